"""The parts of the embedded ``landmark`` engine (:mod:`syncnet_fcn.engines.landmark`), one job each.

========================  =============================================================  ==========
module                    job                                                            layer
========================  =============================================================  ==========
``mouth``                 face mesh on crops, pose-normalised lip features, mouth image  features
``audio_features``        speech features per 25 fps frame, digital silence              features
``features``              one track's standardised model inputs                          features
``models``                CCA and LipSyncNet, the stored ensemble and calibration        engines
``reading``               one track's reading from its landmarks and audio               engines
``training``              fitting the models on training footage                         fitting
``__main__``              ``python -m syncnet_fcn.landmark fit``                         fitting
========================  =============================================================  ==========

Nothing is imported here, so that importing one part never loads the fitting tools.
"""
