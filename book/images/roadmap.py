"""Draw the book's roadmap, images/roadmap.svg: how the chapters build on each other.

Run from anywhere: ``python book/images/roadmap.py``. The figure is plain SVG
written by hand-placed boxes and curves (no plotting library), so the file is
small and diffs well. The edges are the prerequisites each chapter states in
its "In this chapter" box; edit CHAPTERS and EDGES when a chapter changes.
"""

from pathlib import Path
from xml.sax.saxutils import escape

W = 1100  # canvas width (px)
BOX_W, BOX_H = 164, 58

# Tiers from top to bottom: (caption, band colour, [(key, number, title line 1, title line 2)]).
TIERS = [
    ("The problem", "#eef3fb", [
        ("01", "1", "The missing wedge", "and the rotation proxy"),
        ("01b", "1b", "From a tilt series", "to a tomogram"),
    ]),
    ("Foundations\non toys", "#f1f8ef", [
        ("02", "2", "Energy models", "and Langevin dynamics"),
        ("03", "3", "Optimal transport", "in one dimension"),
        ("04", "4", "Entropic transport", "and the semi-dual"),
        ("05", "5", "Generative priors", "for inverse problems"),
        ("05b", "5b", "Posterior sampling", "annealed Langevin, SMC"),
    ]),
    ("The four\nmethods", "#fbf3ea", [
        ("06", "6", "CryoGEN-I", "MAP, energy prior"),
        ("07", "7", "CryoGEN-II", "transport matching"),
        ("08", "8", "CryoWGEN-I", "posterior, reweighting"),
        ("09", "9", "CryoWGEN-II", "posterior, Langevin"),
    ]),
    ("Side by side", "#f5eefa", [
        ("10", "10", "Two peaks", "and a missing band"),
        ("11", "11", "The four methods", "measured side by side"),
    ]),
    ("Next: whole\ntomograms", "#f4f4f4", [
        ("tomo", "", "Whole tomograms", "restored in tiles (CLI)"),
    ]),
]
DASHED = {"tomo"}  # not a chapter: the command-line tool

X_FRACTION = {"tomo": 0.75}  # horizontal place in its tier where the even spacing is not wanted

# Prerequisite edges (source, target). Between neighbours of one tier: a straight arrow; between
# boxes further apart in one tier: an arc above them. "@methods" is the bracket under the four
# methods: the side-by-side chapters need all four.
EDGES = [
    ("01", "01b"),
    ("01", "02"), ("02", "03"), ("03", "04"), ("02", "05"), ("03", "05"),
    ("02", "06"), ("05", "06"), ("06", "07"), ("03", "07"), ("04", "07"),
    ("05", "05b"), ("07", "08"), ("04", "08"), ("05b", "08"), ("08", "09"), ("02", "09"),
    ("@methods", "10"), ("@methods", "11"),
    ("11", "tomo"),
]
BRACKET = ("06", "09")

TIER_GAP, TOP, LEFT_LABEL = 42, 16, 140


def layout():
    pos, bands, y = {}, [], TOP
    for caption, colour, boxes in TIERS:
        band_h = BOX_H + 40
        bands.append((y, band_h, caption, colour))
        n = len(boxes)
        span = W - LEFT_LABEL - 20
        for i, (key, num, l1, l2) in enumerate(boxes):
            cx = LEFT_LABEL + span * X_FRACTION.get(key, (i + 0.5) / n)
            pos[key] = (cx, y + 26 + BOX_H / 2, num, l1, l2)
        y += band_h + TIER_GAP
    return pos, bands, y - TIER_GAP + TOP


def svg():
    pos, bands, height = layout()
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0f}" viewBox="0 0 {W} {height:.0f}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" role="img" aria-labelledby="title">',
        "<title id=\"title\">How the chapters of the book build on each other</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for y, h, caption, colour in bands:
        out.append(f'<rect x="6" y="{y}" width="{W - 12}" height="{h}" rx="10" fill="{colour}"/>')
        lines = caption.split("\n")
        for j, line in enumerate(lines):
            ty = y + h / 2 + 5 + 17 * (j - (len(lines) - 1) / 2)
            out.append(f'<text x="18" y="{ty:.0f}" font-size="14" font-weight="bold" fill="#333">{escape(line)}</text>')
    tier_of = {key: t for t, (_, _, boxes) in enumerate(TIERS) for key, *_ in boxes}
    order = {key: i for _, _, boxes in TIERS for i, (key, *_) in enumerate(boxes)}
    (x0, yb0), (x1, _) = pos[BRACKET[0]][:2], pos[BRACKET[1]][:2]
    y_br = yb0 + BOX_H / 2 + 12
    out.append(f'<path d="M{x0:.1f},{y_br - 12:.1f} V{y_br:.1f} H{x1:.1f} V{y_br - 12:.1f}" fill="none" '
               'stroke="#555" stroke-width="1.4"/>')
    pos["@methods"] = ((x0 + x1) / 2, y_br - BOX_H / 2, "", "", "")
    tier_of["@methods"], order["@methods"] = tier_of[BRACKET[0]], 0
    for a, b in EDGES:
        xa, ya = pos[a][:2]
        xb, yb = pos[b][:2]
        dashed = ' stroke-dasharray="5,4"' if b in DASHED else ""
        if tier_of[a] == tier_of[b] and abs(order[a] - order[b]) > 1:  # an arc above the boxes between them
            top = ya - BOX_H / 2
            out.append(f'<path d="M{xa:.1f},{top:.1f} C{xa:.1f},{top - 22:.1f} {xb:.1f},{top - 22:.1f} {xb:.1f},{top:.1f}" '
                       f'fill="none" stroke="#777" stroke-width="1.2" marker-end="url(#arrow)"{dashed}/>')
        elif tier_of[a] == tier_of[b]:  # neighbours: a straight arrow between the box sides
            sign = 1 if xb > xa else -1
            out.append(f'<line x1="{xa + sign * BOX_W / 2:.1f}" y1="{ya:.1f}" x2="{xb - sign * BOX_W / 2:.1f}" '
                       f'y2="{yb:.1f}" stroke="#555" stroke-width="1.4" marker-end="url(#arrow)"{dashed}/>')
        else:  # from the bottom of a to the top of b
            y1, y2 = ya + BOX_H / 2, yb - BOX_H / 2
            mid = (y1 + y2) / 2
            out.append(f'<path d="M{xa:.1f},{y1:.1f} C{xa:.1f},{mid:.1f} {xb:.1f},{mid:.1f} {xb:.1f},{y2:.1f}" '
                       f'fill="none" stroke="#777" stroke-width="1.2" stroke-opacity="0.8" '
                       f'marker-end="url(#arrow)"{dashed}/>')
    for key, (cx, cy, num, l1, l2) in pos.items():
        if key.startswith("@"):
            continue
        x, y = cx - BOX_W / 2, cy - BOX_H / 2
        dash = ' stroke-dasharray="5,4"' if key in DASHED else ""
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="white" '
                   f'stroke="#444" stroke-width="1.3"{dash}/>')
        title = f"{num}. {l1}" if num else l1
        out.append(f'<text x="{cx:.1f}" y="{cy - 5:.1f}" font-size="12.5" font-weight="bold" text-anchor="middle" '
                   f'fill="#111">{escape(title)}</text>')
        out.append(f'<text x="{cx:.1f}" y="{cy + 13:.1f}" font-size="11.5" text-anchor="middle" fill="#333">'
                   f"{escape(l2)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    target = Path(__file__).with_name("roadmap.svg")
    target.write_text(svg(), encoding="utf-8")
    print(f"wrote {target}")
