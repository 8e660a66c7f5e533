"""Every condition of a figure gets its own look (snn_icl.viz.looks), past ten conditions too."""

import matplotlib.pyplot as plt

from snn_icl.viz.looks import colour, line_style


def _look(line):
    c = line.get_color()
    return (c if isinstance(c, str) else tuple(c), line.get_linestyle())


def test_forty_conditions_have_forty_looks_and_the_first_ten_are_solid():
    looks = {(colour(i), line_style(i)) for i in range(40)}
    assert len(looks) == 40
    assert {line_style(i) for i in range(10)} == {"-"} and line_style(10) == "--"
    assert colour(3) == colour(13) == plt.get_cmap("tab10")(3)


def test_the_course_figure_draws_every_condition_past_ten():
    from snn_icl.viz.course import plot_course

    def condition(shift):
        cell = {"mean": [1.0 + shift, 2.0 + shift], "ci95": [0.1, None], "values": [[1.0], [2.0]]}
        return {"runs": ["a"], "iterations": [0, 50], "views": {"trained": {}},
                "measures": {"trained": {"ratio": cell}}}

    pooled = {"conditions": {f"c{i}": condition(i) for i in range(12)}, "seed": 1,
              "seed_kind": "validation", "episodes": 8}
    fig = plot_course(pooled)
    (legend,) = fig.legends  # below the panels, not over the first one
    assert [t.get_text() for t in legend.get_texts()] == [f"c{i} (n=1)" for i in range(12)]
    means = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("c")]
    assert len({_look(ln) for ln in means}) == 12
    plt.close(fig)
