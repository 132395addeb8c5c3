"""The file formats of imports and exports: CSV the way spreadsheets write it, and XLSX.

Excel saves "CSV UTF-8" with a byte-order mark, uses `;` as the separator where the decimal mark
is a comma, and ends lines with CRLF (or a bare CR on old Macs). `SpreadsheetCSV` reads all of
that: it strips the BOM, finds the separator in the header line and lets the csv module see the
raw line endings, so a quoted cell may span lines. Exports carry a BOM, so Excel opens them as
UTF-8 instead of guessing a legacy code page.
"""

import csv
import io

import tablib
from import_export.formats import base_formats

SEPARATORS = ",;\t|"


class ImportFileError(ValueError):
    """The file itself cannot be read as a table (encoding, layout). Nothing was imported."""


def _separator(header_line: str) -> str:
    """The separator of a header line: the candidate that occurs most often outside quotes."""
    outside = []
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            outside.append(char)
    text = "".join(outside)
    counts = {sep: text.count(sep) for sep in SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def dataset_from_rows(headers: list, rows, row_numbers: list[int]) -> tablib.Dataset:
    """A tablib Dataset built without tablib's per-row checks (the caller made rows the header's width).

    `row_numbers` are the rows as the person's spreadsheet numbers them (the header is row 1; blank
    rows are skipped but still counted), so an error names the row they can find.
    """
    dataset = tablib.Dataset(headers=headers)
    dataset._data = [tablib.core.Row(row) for row in rows]
    dataset.row_numbers = row_numbers
    return dataset


def row_numbers(dataset) -> list[int]:
    return getattr(dataset, "row_numbers", None) or list(range(2, len(dataset) + 2))


class SpreadsheetCSV(base_formats.CSV):
    """CSV in, from any spreadsheet: UTF-8 with or without a BOM, `,` `;` tab or `|`, any line ending."""

    def is_binary(self):
        # Read as bytes and decode here, so an undecodable file gets a clear message.
        return True

    def get_read_mode(self):
        return "rb"

    def create_dataset(self, in_stream, **kwargs):
        if isinstance(in_stream, bytes):
            try:
                text = in_stream.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"The file is not UTF-8 text (byte {exc.start + 1} cannot be read). "
                    'In Excel, save it with "CSV UTF-8 (Comma delimited)".'
                ) from exc
        else:
            text = in_stream.removeprefix("\ufeff")
        text = text.lstrip("\r\n")
        if not text.strip():
            raise ImportFileError("The file is empty.")
        first_line = text.splitlines()[0]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(first_line))
        try:
            headers = next(reader)
            width = len(headers)
            rows, numbers = [], []
            while True:
                number = reader.line_num + 1  # where the record starts (a quoted cell may span lines)
                try:
                    row = next(reader)
                except StopIteration:
                    break
                if not any(cell.strip() for cell in row):
                    continue  # a blank line, or a row of empty cells
                if len(row) > width:
                    if any(cell.strip() for cell in row[width:]):
                        raise ImportFileError(
                            f"Row {reader.line_num} has {len(row)} cells but the header has {width}: "
                            "check for a separator inside an unquoted cell."
                        )
                    row = row[:width]
                elif len(row) < width:
                    row = row + [""] * (width - len(row))
                rows.append(row)
                numbers.append(number)
        except csv.Error as exc:
            raise ImportFileError(f"Row {reader.line_num} cannot be read as CSV: {exc}.") from exc
        return dataset_from_rows(headers, rows, numbers)

    def export_data(self, dataset, **kwargs):
        return "\ufeff" + super().export_data(dataset, **kwargs)


class SpreadsheetXLSX(base_formats.XLSX):
    """XLSX in and out (the first sheet; formulas are read as their computed values)."""

    def create_dataset(self, in_stream):
        try:
            dataset = super().create_dataset(in_stream)
        except Exception as exc:  # openpyxl raises several types for a file that is not a workbook
            raise ImportFileError(f"The file cannot be read as an Excel workbook (.xlsx): {exc}.") from exc
        headers = list(dataset.headers or [])
        while headers and (headers[-1] is None or str(headers[-1]).strip() == ""):
            headers.pop()
        width = len(headers)
        rows, numbers = [], []
        for number, row in enumerate(dataset, start=2):
            if not any(cell is not None and str(cell).strip() != "" for cell in row):
                continue
            if any(cell is not None and str(cell).strip() != "" for cell in row[width:]):
                raise ImportFileError(f"Row {number} has a value in a column without a header.")
            rows.append(list(row[:width]))
            numbers.append(number)
        return dataset_from_rows(["" if h is None else str(h) for h in headers], rows, numbers)


IMPORT_FORMATS = [SpreadsheetCSV, SpreadsheetXLSX]
EXPORT_FORMATS = [SpreadsheetCSV, SpreadsheetXLSX]
