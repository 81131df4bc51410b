"""Write the dashboard folder: ``index.html``, the page's script and style, plotly.js, the
data as a script (``file://`` pages may not fetch JSON) and copies of every image, so that the
folder opens from disk anywhere, with no server and no network."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["STATIC_DIR", "write_site"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"index.html": ".", "dashboard.js": "assets", "dashboard.css": "assets"}


def write_site(data: dict[str, Any], images: dict[str, str], out: Path) -> Path:
    """Write the site into ``out``; ``images`` maps a name under ``assets/img/`` to the source
    file to copy. Returns the path of ``index.html``."""
    assets = out / "assets"
    img_dir = assets / "img"
    if img_dir.is_dir():
        shutil.rmtree(img_dir)  # images of runs that no longer exist
    img_dir.mkdir(parents=True)
    for name, source in images.items():
        shutil.copyfile(source, img_dir / name)
    for name, folder in STATIC_FILES.items():
        shutil.copyfile(STATIC_DIR / name, out / folder / name)
    _write_plotly(assets / "plotly.min.js")
    text = json.dumps(_plain(data), allow_nan=False, separators=(",", ":"))
    (assets / "data.js").write_text(f"window.LEARNCT_DASHBOARD = {text};\n")
    return out / "index.html"


def asset_name(*parts: str) -> str:
    """A file name under ``assets/img/`` made of ``parts`` (path separators and odd characters
    replaced), unique for distinct run ids and labels."""
    return "__".join(re.sub(r"[^A-Za-z0-9.-]+", "_", p) for p in parts)


def _plain(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become null, other objects (a YAML date) strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _write_plotly(path: Path) -> None:
    """plotly.js as bundled with the plotly package (no CDN); rewritten only when it changed."""
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    if not path.is_file() or path.read_text() != script:
        path.write_text(script)
