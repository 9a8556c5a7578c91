"""The tiles' geometry (tiling.py): cores that cut the image, windows on the stride's grid
that reach past them by the receptive field."""

from __future__ import annotations

import numpy as np

from neural_style_tf import tiling

SHAPE = (70, 90, 3)
CORE = 32


def test_the_tiles_cut_the_image_into_cores_on_the_strides_grid(tiny_network):
    halo = tiny_network.tile_halo("relu5_1")
    before, after, stride = halo
    tiles = tiling.plan(SHAPE[0], SHAPE[1], CORE, halo)
    owned = np.zeros(SHAPE[:2], int)
    for tile in tiles:
        y0, y1, x0, x1 = tile.core
        owned[y0:y1, x0:x1] += 1
        assert y0 % stride == 0 and x0 % stride == 0 and tile.window[0] % stride == 0 and tile.window[2] % stride == 0
        wy0, wy1, wx0, wx1 = tile.window
        assert wy0 == max(0, y0 - before) and wy1 == min(SHAPE[0], y1 + after)
        assert wx0 == max(0, x0 - before) and wx1 == min(SHAPE[1], x1 + after)
    assert (owned == 1).all()  # every pixel owned by exactly one core
    assert len(tiles) == 9


def test_the_halo_follows_the_receptive_field():
    from neural_style_tf.networks import loading

    network = loading.load_net(None)  # the embedded VGG-19: 3 x 3 convolutions, 2 x 2 poolings
    # relu5_1 reads 70 px before a position (rounded up to the stride, 80) and 85 after;
    # the core's last position is a stride before its end: 85 - 16 + 1.
    assert network.tile_halo("relu5_1") == (80, 70, 16)
    assert network.tile_halo("relu1_1") == (1, 1, 1)


def test_cores_are_near_equal_and_end_at_the_image_edge():
    assert tiling.axis_cores(100, 40, 16) == [(0, 48), (48, 96), (96, 100)]
    assert tiling.axis_cores(100, 200, 16) == [(0, 100)]
    assert all(s % 16 == 0 for s, _ in tiling.axis_cores(3840, 1024, 16))


def test_a_cores_map_at_a_layer_marks_its_core_in_the_windows_feature_map():
    tile = tiling.Tile(window=(16, 70, 32, 90), core=(32, 64, 48, 90))
    assert tiling.layer_box(tile, 4) == (4, 12, 4, 15)  # 90 / 4 rounds up: the image's last position
    marked = tiling.core_map(tile, 4, (14, 15))
    assert marked.sum() == 8 * 11 and marked[4, 4] == 1 and marked[3, 4] == 0
