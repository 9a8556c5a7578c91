"""sheet.py: a sweep's layout (rows: the first swept flag; columns: the others) and the sheet
it draws, on two tiny images."""

from __future__ import annotations

import numpy as np

from neural_style_tf import images
from neural_style_tf.apps import sheet


def test_the_first_flag_is_the_rows_and_the_others_the_columns():
    points = [(("style-weight", 10), ("tv-weight", 0)), (("style-weight", 10), ("tv-weight", 5)),
              (("style-weight", 1000), ("tv-weight", 0)), (("style-weight", 1000), ("tv-weight", 5))]
    rows, cols, where = sheet.layout(points)
    assert rows == [("style-weight", 10), ("style-weight", 1000)] and cols == ["tv-weight=0", "tv-weight=5"]
    assert where[points[3]] == (1, 1) and where[points[1]] == (0, 1)
    single = [(("style-weight", 1),), (("style-weight", 2),)]
    assert sheet.layout(single)[1] == [""]


def test_the_sheet_captions_each_panel(tmp_path):
    path = tmp_path / "a.png"
    images.save_image(str(path), np.full((12, 16, 3), 128.0, np.float32))
    entries = [((("style-weight", 1),), str(path), 12.345, None),
               ((("style-weight", 2),), None, None, "out of memory while building the graph of the objective")]
    out = tmp_path / "sheet.png"
    rows, cols, captions = sheet.write_sheet(str(out), entries, title="sweep")
    assert rows == ["style-weight=1", "style-weight=2"] and cols == [""]
    assert captions[entries[0][0]] == "loss 12.35"
    assert captions[entries[1][0]] == "failed\nout of memory while building the graph o"  # 40 characters
    assert images.load_image(str(out)).shape[0] > 100
