"""Precomputed widgets: every state rendered once, in Stacks linked to the
controls; inert widgets: every control disabled, beside the one callout."""

import base64

import ipywidgets as widgets
import matplotlib
import pytest

from gemma4_lite.book.widgets import CALLOUT, enable, inert, precomputed

matplotlib.use("Agg")


def _controls():
    return {
        "model": widgets.Dropdown(options=["E2B", "E4B", "31B"], value="E4B"),
        "window": widgets.SelectionSlider(
            options=[("short", 128), ("long", 1024)], value=1024
        ),
    }


def _stack_pages(stack):
    """The render arguments each leaf Output shows, by the path of indices
    through the nested stacks.
    """
    pages = {}
    for index, child in enumerate(stack.children):
        if isinstance(child, widgets.Stack):
            for path, text in _stack_pages(child).items():
                pages[(index, *path)] = text
        else:
            pages[(index,)] = child.outputs[0]["data"]["text/html"]
    return pages


def test_every_combination_is_rendered_once_in_nested_stacks():
    calls = []

    def render(model, window):
        calls.append((model, window))
        return f"<p>{model} {window}</p>"

    controls = _controls()
    box = precomputed(render, controls)
    row, top = box.children
    assert list(row.children) == list(controls.values())
    assert sorted(calls) == sorted(
        (m, w) for m in ("E2B", "E4B", "31B") for w in (128, 1024)
    )
    assert isinstance(top, widgets.Stack) and len(top.children) == 3
    # the stacks start at the controls' initial values
    assert top.selected_index == 1
    assert all(s.selected_index == 1 for s in top.children)
    pages = _stack_pages(top)
    assert pages[(2, 0)] == "<p>31B 128</p>"
    assert pages[(0, 1)] == "<p>E2B 1024</p>"
    assert len(pages) == 6


def test_each_control_index_is_jslinked_to_its_stacks(monkeypatch):
    links = []
    real = widgets.jslink

    def record(source, target):
        links.append((source, target))
        return real(source, target)

    monkeypatch.setattr(widgets, "jslink", record)
    controls = _controls()
    box = precomputed(lambda model, window: f"{model}{window}", controls)
    top = box.children[1]
    # one link to the outer stack, one to each of the three inner ones
    assert len(links) == 4
    linked = {}
    for (control, trait), (stack, target_trait) in links:
        assert (trait, target_trait) == ("index", "selected_index")
        linked[id(stack)] = control
    assert linked[id(top)] is controls["model"]
    for inner in top.children:
        assert linked[id(inner)] is controls["window"]


def test_too_many_states_is_refused_before_rendering_anything():
    calls = []
    controls = {
        "a": widgets.Dropdown(options=list(range(10))),
        "b": widgets.Dropdown(options=list(range(10))),
    }
    with pytest.raises(ValueError, match="100 combinations.*at most 64"):
        precomputed(lambda a, b: calls.append(1), controls)
    assert calls == []
    with pytest.raises(ValueError, match="at most 50"):
        precomputed(lambda a, b: "", controls, max_states=50)


def test_a_control_without_options_is_refused():
    with pytest.raises(TypeError, match="IntSlider has no options"):
        precomputed(lambda x: "", {"x": widgets.IntSlider()})


def test_labels_are_not_cut_and_controls_wrap():
    controls = {
        "temperature": widgets.Dropdown(
            options=[0.5, 1.0], description="temperature"
        )
    }
    box = precomputed(lambda temperature: "", controls)
    assert controls["temperature"].style.description_width == "initial"
    assert box.children[0].layout.flex_flow == "row wrap"


def test_figures_are_shown_at_their_page_size_whatever_the_dpi():
    import matplotlib.pyplot as plt

    drawn = []

    def render(n):
        fig, ax = plt.subplots(figsize=(4, 2), dpi=100)
        ax.plot(range(n))
        drawn.append(fig.number)
        return fig

    box = precomputed(render, {"n": widgets.Dropdown(options=[2, 3])}, dpi=200)
    for page in box.children[1].children:
        (output,) = page.outputs
        png = base64.b64decode(output["data"]["image/png"])
        pixels = int.from_bytes(png[16:20], "big")
        shown = output["metadata"]["image/png"]["width"]
        # drawn at 2x, shown at the figure's own 100 dpi
        assert shown == round(pixels / 2)
        assert 300 < shown < 420  # about 4 in at 100 dpi, tight box
    assert not set(drawn) & set(plt.get_fignums())  # each was closed


def test_inert_disables_every_control_and_shows_the_callout():
    inner = widgets.HBox(
        [widgets.IntSlider(description="k"), widgets.Dropdown(options=[1, 2])]
    )
    outer = widgets.VBox([inner, widgets.Checkbox(description="on")])
    box = inert(outer, "https://colab.research.google.com/github/o/r/x.ipynb")
    note, shown = box.children
    assert shown is outer
    controls = [*inner.children, outer.children[1]]
    assert all(c.disabled for c in controls)
    # labels such as "temperature scale" are not cut to "temperat..."
    assert inner.children[0].style.description_width == "initial"
    assert CALLOUT in note.value and 'class="g4-callout"' in note.value
    assert "https://colab.research.google.com/github/o/r/x.ipynb" in note.value
    enable(box)
    assert not any(c.disabled for c in controls)
