"""Render a UTF-8 text file as a real PDF (fpdf2), for the PDF fixtures.

    python3 -m venv /tmp/fpenv && /tmp/fpenv/bin/pip install fpdf2==2.8.9
    /tmp/fpenv/bin/python scripts/make-pdf.py IN.txt OUT.pdf "Title"

The generated PDFs are committed; this script records how they were made.
"""
import sys

from fpdf import FPDF

src, dst, title = sys.argv[1], sys.argv[2], sys.argv[3]
pdf = FPDF(format="A4")
pdf.set_title(title)
pdf.set_creator("troupe scripts/make-pdf.py (fpdf2)")
pdf.set_auto_page_break(auto=True, margin=15)
pdf.add_page()
pdf.set_font("Helvetica", size=10)
with open(src, encoding="utf-8") as f:
    for paragraph in f.read().replace("\f", "").split("\n\n"):
        text = " ".join(paragraph.split())
        if text:
            pdf.multi_cell(0, 5, text.encode("latin-1", "replace").decode("latin-1"))
            pdf.ln(2)
pdf.output(dst)
