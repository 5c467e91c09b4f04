"""9101/9102 file transfer against the simulated centre (Base64 and multipart uploads,
binary and JSON download replies) and the zip/text format with its encodings."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from adapter.errors import BusinessRejection, FileFormatError
from adapter.zipped_text import text_from_zip, zip_text

TEXT = "H43010000001\t310\t21\t1234.50\t张三\n"


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_zip_text_round_trip_is_utf8_tab_text():
    data = zip_text("detail.txt", TEXT)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["detail.txt"]
        assert archive.read("detail.txt") == TEXT.encode("utf-8")
    read = text_from_zip(data)
    assert (read.member, read.text, read.encoding) == ("detail.txt", TEXT, "utf-8")


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (TEXT.encode("gbk"), "gb18030"),
        (TEXT.encode("gb18030"), "gb18030"),
        (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.replace("\n", "\r\n").encode("utf-8"), "utf-8"),
    ],
)
def test_files_in_gbk_with_bom_or_crlf_are_read(raw, encoding):
    read = text_from_zip(_zip({"result.txt": raw}))
    assert read.text == TEXT
    assert read.encoding == encoding


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"not a zip", "not a zip archive"),
        (_zip({"a.txt": b"1", "b.txt": b"2"}), "expected one file in the archive, found 2 (a.txt, b.txt)"),
        (_zip({"../../etc/cron.d/x": b"1"}), "has a path outside the archive"),
        (_zip({"a.txt": b"\xff\xfe\xfa\xfb" * 3}), "neither UTF-8 nor GB18030"),
        (_zip({"a.txt": TEXT.encode() * 50})[:-40], "not a zip archive"),
    ],
)
def test_unsafe_or_unreadable_archives_are_refused(data, words):
    with pytest.raises(FileFormatError, match=words.replace("(", r"\(").replace(")", r"\)")):
        text_from_zip(data)


def test_archive_that_unpacks_too_large_is_refused():
    bomb = _zip({"a.txt": b"0" * 2_000_000})
    assert len(bomb) < 10_000
    with pytest.raises(FileFormatError, match="unpacks to 2000000 bytes, more than 1000000"):
        text_from_zip(bomb, max_bytes=1_000_000)


@pytest.mark.parametrize("region", ["nhsa", "hunan"])  # Base64 form; multipart form (CSB-signed)
def test_upload_then_download_returns_the_same_bytes(region, make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre(region)
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, region=region)
    content = zip_text("H43010000001_3202.txt", TEXT * 100)

    uploaded = adapter.files.upload("H43010000001_3202.zip", content)

    assert uploaded.file_qury_no and uploaded.filename == "H43010000001_3202.zip"
    assert centre.ledger.files[uploaded.file_qury_no] == ("H43010000001_3202.zip", content)
    assert centre.ledger.accepted["9101"] == 1
    assert adapter.files.download(uploaded.file_qury_no, uploaded.filename) == content


def test_download_of_a_gbk_file_published_by_the_centre(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    number = centre.publish_file("result.zip", _zip({"result.txt": TEXT.encode("gbk")}))

    read = text_from_zip(adapter.files.download(number, "result.zip", public=True))

    assert read.text == TEXT and read.encoding == "gb18030"


def test_download_refusal_comes_back_as_json_with_the_centres_words(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    with pytest.raises(BusinessRejection, match=r"文件查询号\[F404\]不存在或已过期"):
        adapter.files.download("F404", "missing.zip")


def test_centre_accepts_the_byte_array_form_and_refuses_what_is_not_a_zip(make_adapter, centre, sample_his,
                                                                           tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    client = adapter.client
    content = zip_text("a.txt", TEXT)
    signed_bytes = [b - 256 if b > 127 else b for b in content]  # Java's Arrays.toString(byte[])
    _, reply = client.call("9101", {"fsUploadIn": {"in": signed_bytes, "filename": "a.zip",
                                                   "fixmedins_code": "H43010000001"}}, message_id=None)
    assert centre.ledger.files[reply.output["file_qury_no"]][1] == content
    with pytest.raises(BusinessRejection, match="不是zip压缩文件"):
        client.call("9101", {"fsUploadIn": {"in": base64.b64encode(b"plain").decode(), "filename": "b.zip",
                                            "fixmedins_code": "H43010000001"}}, message_id=None)
