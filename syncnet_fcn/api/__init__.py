"""Flask blueprints, one per API resource (eval, fix, timeline, monitors, ...).

``app.py`` creates the app, holds the shared job queue (``SyncService``) and registers each blueprint;
a blueprint only parses input, calls the library and answers. Nothing here is imported by the library.
"""
