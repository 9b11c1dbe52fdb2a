"""The face mesh's landmarks read from their serialised form equal the field-by-field reading."""

from __future__ import annotations

import numpy as np
import pytest

landmark_pb2 = pytest.importorskip("mediapipe.framework.formats.landmark_pb2")

from syncnet_fcn.landmark.mouth import N_LANDMARKS, _mesh_points  # noqa: E402


def field_by_field(landmarks, width, height):
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks.landmark[:N_LANDMARKS]],
                    np.float32)


@pytest.mark.parametrize("zero_coordinate", [False, True])
def test_serialised_reading_equals_field_by_field(zero_coordinate):
    rng = np.random.default_rng(0)
    landmarks = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in rng.uniform(-0.2, 1.2, size=(N_LANDMARKS + 10, 3)).astype(np.float32):  # refined meshes have 478
        landmarks.landmark.add(x=float(x), y=float(y), z=float(z))
    if zero_coordinate:  # left out of the encoding: the entry is shorter, the slow path must read it
        landmarks.landmark[17].y = 0.0
    got = _mesh_points(landmarks, 224, 180)
    assert got.shape == (N_LANDMARKS, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, field_by_field(landmarks, 224, 180))
