"""The book's global figure settings: inline figures drawn at 2x and shown
at their normal size (sharp on high-density screens), and a base font size
legible on a phone."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import base64
{imports}
fig, ax = plt.subplots(figsize=(4, 2), dpi=100)
formatter = get_ipython().display_formatter
formatter.active_types = formatter.active_types + ["image/png"]
data, metadata = formatter.format(fig)
png = data["image/png"]
png = base64.b64decode(png) if isinstance(png, str) else png
print("RESULT", int.from_bytes(png[16:20], "big"),
      metadata["image/png"]["width"], plt.rcParams["font.size"])
"""
ORDERS = {
    "plots imported first": "import gemma4_lite.book.plots\n"
    "import matplotlib.pyplot as plt",
    "pyplot imported first": "import matplotlib.pyplot as plt\n"
    "import gemma4_lite.book.plots",
}


@pytest.mark.parametrize("order", ORDERS)
def test_inline_figures_are_retina_at_their_normal_size(order, tmp_path):
    from gemma4_lite.book.plots import BASE_FONT_SIZE

    script = tmp_path / "figure.py"
    script.write_text(SCRIPT.format(imports=ORDERS[order]))
    ipython = Path(sys.executable).with_name("ipython")
    run = subprocess.run(
        [str(ipython), "--no-banner", "--quick", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **__import__("os").environ,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        },
    )
    line = next(
        (ln for ln in run.stdout.splitlines() if ln.startswith("RESULT")),
        None,
    )
    assert line is not None, run.stdout + run.stderr
    pixels, shown, font = line.split()[1:]
    # 4 in at 100 dpi, in a tight box: about 400 px shown, 800 drawn
    assert 300 < int(shown) < 450
    assert int(pixels) in (2 * int(shown), 2 * int(shown) + 1)
    assert float(font) == BASE_FONT_SIZE >= 11
