"""Each block diagram draws without error and returns a figure (alone or into given axes)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from course_lib.figures import diagrams  # noqa: E402


@pytest.mark.parametrize("draw, kwargs", [
    (diagrams.draw_grouped_conv, {}),
    (diagrams.draw_grouped_conv, {"in_channels": 64, "out_channels": 128, "groups": 8}),
    (diagrams.draw_resnext_forms, {}),
    (diagrams.draw_resnext_forms, {"channels": 64, "bottleneck": 8, "cardinality": 2}),
    (diagrams.draw_inception, {}),
    (diagrams.draw_inception, {"in_channels": 32, "out_3x3": 8, "height": 7}),
    (diagrams.draw_se, {"channels": 32, "reduction": 4}),
    (diagrams.draw_sk, {}),
    (diagrams.draw_sk, {"kernel_sizes": (3, 5, 7), "channels": 128}),
])
def test_draw_returns_figure(draw, kwargs):
    fig = draw(**kwargs)
    assert isinstance(fig, Figure) and fig.axes
    plt.close(fig)


def test_draw_into_given_axes():
    fig, ax = plt.subplots()
    assert diagrams.draw_se(ax=ax) is fig
    assert diagrams.draw_grouped_conv(ax=ax) is fig
    plt.close(fig)


def test_bad_groups_raise():
    with pytest.raises(ValueError, match="groups"):
        diagrams.draw_grouped_conv(in_channels=10, groups=4)
    with pytest.raises(ValueError, match="cardinality"):
        diagrams.draw_resnext_forms(bottleneck=10, cardinality=4)


def test_figure_png_closes_the_figure():
    fig = diagrams.draw_se()
    png = diagrams.figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
