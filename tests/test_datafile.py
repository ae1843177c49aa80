"""The shared CSV reader and error of user data (event logs, customer bases, plans)."""

import pytest

import ltvsim
from ltvsim import fit
from ltvsim.datafile import DataError, naming_file, read_csv_rows
from ltvsim.events import read_events
from ltvsim.forecast import read_base


def write(tmp_path, text, name="data.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_one_error_class_for_all_user_data():
    assert ltvsim.DataError is DataError is fit.DataError
    assert issubclass(DataError, ValueError)


def test_rows_are_numbered_as_a_spreadsheet_shows_them(tmp_path):
    # BOM, spaces around header names, blank rows (empty and only commas), and a
    # quoted cell over two lines: each record keeps the line it starts on.
    text = '\ufeff a , b \n\n1,2\n,\n"x\ny",3\n4,5\n'
    header, rows = read_csv_rows(write(tmp_path, text), "table", "a,b")
    assert header == ["a", "b"]
    assert rows == [(3, ["1", "2"]), (5, ["x\ny", "3"]), (7, ["4", "5"])]


@pytest.mark.parametrize(
    "text, encoding, message",
    [
        ("", "utf-8", r"data.csv is empty; expected a header a,b$"),
        ("\n ,\n", "utf-8", r"data.csv is empty; expected a header a,b$"),
        ("a,b\n\xe9,1\n", "latin-1", r"data.csv is not a CSV text file \(not UTF-8\)"),
        # a cell over the csv module's field size limit (128 KiB)
        ("a,b\n" + "x" * 200_000 + ",1\n", "utf-8", r"cannot read .*data.csv: field larger"),
    ],
)
def test_unusable_files_are_one_line_errors(tmp_path, text, encoding, message):
    with pytest.raises(DataError, match=message) as info:
        read_csv_rows(write(tmp_path, text, encoding=encoding), "table", "a,b")
    assert "\n" not in str(info.value)


def test_missing_file_is_named_by_what_it_is(tmp_path):
    with pytest.raises(DataError, match=r"^table not found: .*nope.csv$"):
        read_csv_rows(tmp_path / "nope.csv", "table", "a,b")


def test_readers_report_the_file_row(tmp_path):
    """A blank row above the bad one does not shift the row number."""
    events = "customer_id,date,event,mrr\n\nx,2024-01-01,start,abc\n"
    with pytest.raises(DataError, match=r"row 3, column mrr: 'abc' is not a number"):
        read_events(write(tmp_path, events))
    base = "tenure_months,customers,mrr_per_customer\n1,2,3\n\n4,x,6\n"
    with pytest.raises(DataError, match=r"row 4, column customers: expected a number"):
        read_base(write(tmp_path, base, "base.csv"))


def test_naming_file_prefixes_data_errors_with_the_path():
    with pytest.raises(DataError, match=r"^base\.csv: month\[0\] = -1"):
        with naming_file("base.csv"):
            raise DataError("month[0] = -1: must be a whole number >= 0")
    with pytest.raises(DataError, match=r"^row 3: bad"):
        with naming_file(None):  # records, not a file: the message as it is
            raise DataError("row 3: bad")
    with pytest.raises(ValueError, match=r"^other$"):  # other errors pass through
        with naming_file("base.csv"):
            raise ValueError("other")
