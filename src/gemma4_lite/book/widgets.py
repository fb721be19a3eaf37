"""Widgets that answer on the static website as well as in Jupyter.

The website has no kernel, so a widget whose output is computed by a Python
callback would move and change nothing there. :func:`precomputed` renders the
output for every value its controls offer (a small grid) when the notebook
runs, puts each result in a page of nested ipywidgets ``Stack`` containers,
and links each control's ``index`` to the stacks with ``jslink``. The link is
saved in the notebook's widget state as a ``LinkModel``, which the site's own
widget manager runs in the browser: moving a control shows the page computed
for that value, with no kernel and no JavaScript of the book's own. In
Jupyter and on Colab the same links run in the front end.

Controls whose space cannot be covered that way go through :func:`inert`:
they are drawn disabled, beside a callout that says where they are live.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable, Sequence

CALLOUT = "Interactive in Jupyter or Colab"


def _as_output(result: Any, dpi: int) -> Any:
    """One ``Output`` widget showing ``result`` (a matplotlib figure, HTML
    text, or anything IPython can display).

    The output is put in the widget directly rather than displayed into it,
    so that it is saved the same way in a kernel and in plain Python.
    """
    import ipywidgets as widgets
    from IPython.core.formatters import format_display_data
    from IPython.display import HTML, Image

    if hasattr(result, "savefig"):
        import matplotlib.pyplot as plt

        buffer = io.BytesIO()
        result.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(result)
        png = buffer.getvalue()
        # Shown at the size a plain figure has on the page (the figure's
        # own dpi), whatever the resolution it was drawn at; the tight
        # bounding box makes the image narrower or wider than figsize.
        pixels = int.from_bytes(png[16:20], "big")
        result = Image(data=png, width=round(pixels * result.get_dpi() / dpi))
    elif isinstance(result, str):
        result = HTML(result)
    out = widgets.Output()
    if result is not None:
        data, metadata = format_display_data(result)
        data = {
            mime: base64.b64encode(value).decode("ascii")
            if isinstance(value, bytes)
            else value
            for mime, value in data.items()
        }
        out.outputs = (
            {
                "output_type": "display_data",
                "data": data,
                "metadata": metadata,
            },
        )
    return out


def _options(control: Any) -> Sequence[Any]:
    options = getattr(control, "options", None)
    if not options:
        raise TypeError(
            f"{type(control).__name__} has no options: precomputed widgets "
            "take selection controls (Dropdown, SelectionSlider, "
            "ToggleButtons, RadioButtons)"
        )
    # Selection widgets store options as (label, value) pairs.
    return [
        o[1] if isinstance(o, tuple) and len(o) == 2 else o for o in options
    ]


def precomputed(
    render: Callable[..., Any],
    controls: dict[str, Any],
    *,
    dpi: int = 144,
    max_states: int = 64,
) -> Any:
    """A widget whose every state is computed now and switched in the
    browser.

    ``controls`` maps ``render``'s keyword arguments to selection widgets;
    ``render(**values)`` returns a matplotlib figure, an HTML string or any
    displayable object for one combination of values. Every combination is
    rendered once (at most ``max_states``: keep the grid, and the page,
    small), each in its own ``Output`` widget, nested in one ``Stack`` per
    control. Returns a ``VBox`` of the controls above the stacks.

    Figures are drawn at ``dpi`` (144: sharp on high-density screens at
    about half the bytes of 2x, which matters when a page carries every
    state) and shown at the size the figure has on the page.
    """
    import ipywidgets as widgets

    names = list(controls)
    grids = [_options(controls[name]) for name in names]
    states = 1
    for grid in grids:
        states *= len(grid)
    if states > max_states:
        raise ValueError(
            f"{states} combinations of {names} to precompute; at most "
            f"{max_states}: offer fewer values per control"
        )

    def build(level: int, chosen: dict[str, Any]) -> Any:
        if level == len(names):
            return _as_output(render(**chosen), dpi)
        name = names[level]
        pages = [
            build(level + 1, {**chosen, name: value}) for value in grids[level]
        ]
        stack = widgets.Stack(pages, selected_index=controls[name].index)
        widgets.jslink((controls[name], "index"), (stack, "selected_index"))
        return stack

    for control in controls.values():
        # Labels such as "temperature" must not be cut to "temperat...".
        control.style.description_width = "initial"
    # Controls wrap onto a second row rather than widen the page.
    row = widgets.HBox(
        list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")
    )
    return widgets.VBox([row, build(0, {})])


def inert(widget: Any, colab_url: str) -> Any:
    """Show ``widget`` with every control disabled and the one callout the
    book uses for widgets that need a running kernel.

    Use it only where :func:`precomputed` cannot cover the controls' space.
    Re-enable the controls in Jupyter with ``enable(widget)``.
    """
    import ipywidgets as widgets

    for child in _walk(widget):
        if hasattr(child, "disabled"):
            child.disabled = True
        if hasattr(getattr(child, "style", None), "description_width"):
            child.style.description_width = "initial"
    note = widgets.HTML(
        f'<div class="g4-callout">{CALLOUT}: '
        f'<a href="{colab_url}" target="_blank" rel="noopener">open this '
        "chapter on Colab</a> and run <code>enable(...)</code> on it.</div>"
    )
    return widgets.VBox([note, widget])


def enable(widget: Any) -> None:
    """Re-enable every control of a widget shown with :func:`inert`."""
    for child in _walk(widget):
        if hasattr(child, "disabled"):
            child.disabled = False


def _walk(widget: Any):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)
