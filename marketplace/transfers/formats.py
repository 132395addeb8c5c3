"""The file formats of imports and exports: CSV the way spreadsheets write it, and XLSX.

Excel saves "CSV UTF-8" with a byte-order mark, uses `;` as the separator where the decimal mark
is a comma, and ends lines with CRLF (or a bare CR on old Macs). `SpreadsheetCSV` reads all of
that: it strips the BOM, finds the separator in the header line and lets the csv module see the
raw line endings, so a quoted cell may span lines. Exports carry a BOM, so Excel opens them as
UTF-8 instead of guessing a legacy code page.
"""

import csv
import io
import zipfile

import openpyxl
import tablib
from django.conf import settings
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


def xlsx_limits() -> dict[str, int]:
    """The bounds of an XLSX import (settings MARKETPLACE_IMPORT_MAX_ROWS, _COLUMNS, _CELLS, _UNZIPPED_BYTES)."""
    return {
        "rows": settings.MARKETPLACE_IMPORT_MAX_ROWS,
        "columns": settings.MARKETPLACE_IMPORT_MAX_COLUMNS,
        "cells": settings.MARKETPLACE_IMPORT_MAX_CELLS,
        "unzipped": settings.MARKETPLACE_IMPORT_MAX_UNZIPPED_BYTES,
    }


def _check_archive(content: bytes, limit: int) -> None:
    """Refuse a workbook whose members would unpack to more than `limit` bytes (a zip bomb).

    The sizes are the zip's own declarations; they can be trusted as a bound, because the zip
    reader stops at a member's declared size (and fails its checksum if the data goes on).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImportFileError(f"The file cannot be read as an Excel workbook (.xlsx): {exc}.") from exc
    if unzipped > limit:
        raise ImportFileError(
            f"The workbook unpacks to {unzipped:,} bytes, more than the {limit:,} allowed: "
            "split it into smaller files, or save it as CSV."
        )


def _check_size(rows, columns, limits: dict[str, int], *, declared: bool, product: bool = True) -> None:
    """Refuse a sheet of more rows, columns or cells than the limits (the header row counts)."""
    how = "declares" if declared else "has"
    if rows is not None and rows > limits["rows"] + 1:
        raise ImportFileError(
            f"The sheet {how} {rows:,} rows; at most {limits['rows']:,} rows (plus the header) can be "
            "imported from one file. Split it into parts."
        )
    if columns is not None and columns > limits["columns"]:
        raise ImportFileError(
            f"The sheet {how} {columns:,} columns; at most {limits['columns']:,} can be imported. "
            "Delete the unused columns (or clear far-away cells) and save it again."
        )
    if product and rows is not None and columns is not None and rows * columns > limits["cells"]:
        raise ImportFileError(
            f"The sheet {how} {rows * columns:,} cells ({rows:,} rows x {columns:,} columns); at most "
            f"{limits['cells']:,} can be imported from one file. Split it into parts."
        )


class SpreadsheetXLSX(base_formats.XLSX):
    """XLSX in and out (the first sheet; formulas are read as their computed values).

    A workbook is bounded before it is parsed: its unpacked size, then the size its sheet declares
    (`<dimension ref="A1:XFD5000">`), against MARKETPLACE_IMPORT_MAX_*. openpyxl then streams the
    sheet (`read_only`), never reading past the row and column limits, and counts as it goes, since
    a sheet may declare less than it holds. Cells past the column limit are not read.
    """

    def create_dataset(self, in_stream):
        limits = xlsx_limits()
        _check_archive(in_stream, limits["unzipped"])
        try:
            book = openpyxl.load_workbook(io.BytesIO(in_stream), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises several types for a file that is not a workbook
            raise ImportFileError(f"The file cannot be read as an Excel workbook (.xlsx): {exc}.") from exc
        try:
            return self._read(book.worksheets[0] if book.worksheets else None, limits)
        finally:
            book.close()

    def _read(self, sheet, limits: dict[str, int]) -> tablib.Dataset:
        if sheet is None:
            raise ImportFileError("The workbook has no sheet.")
        if sheet.max_row is not None and sheet.max_column is not None:
            _check_size(sheet.max_row, sheet.max_column, limits, declared=True)
        # Read one row and one column past the limits, to notice a sheet that holds more than it says.
        rows = sheet.iter_rows(max_row=limits["rows"] + 2, max_col=limits["columns"] + 1, values_only=True)
        try:
            header_row = list(next(rows, ()))
            while header_row and (header_row[-1] is None or str(header_row[-1]).strip() == ""):
                header_row.pop()
            _check_size(None, len(header_row), limits, declared=False)
            headers = ["" if h is None else str(h) for h in header_row]
            width = len(headers)
            data, numbers = [], []
            cells = width
            for number, row in enumerate(rows, start=2):
                filled = [i for i, cell in enumerate(row) if cell is not None and str(cell).strip() != ""]
                if not filled:
                    continue
                _check_size(number, filled[-1] + 1, limits, declared=False, product=False)
                cells += len(filled)
                if cells > limits["cells"]:
                    raise ImportFileError(
                        f"The sheet has more than {limits['cells']:,} filled cells, the most that can be "
                        "imported from one file. Split it into parts."
                    )
                if filled[-1] >= width:
                    raise ImportFileError(f"Row {number} has a value in a column without a header.")
                data.append(list(row[:width]))
                numbers.append(number)
        except ImportFileError:
            raise
        except Exception as exc:  # a damaged sheet: openpyxl raises several types while parsing
            raise ImportFileError(f"The sheet cannot be read: {exc}.") from exc
        return dataset_from_rows(headers, data, numbers)


IMPORT_FORMATS = [SpreadsheetCSV, SpreadsheetXLSX]
EXPORT_FORMATS = [SpreadsheetCSV, SpreadsheetXLSX]
