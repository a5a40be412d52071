"""Safe unpacking: hostile zips built here with the zipfile module are refused, naming the member."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from sources.archives import ArchiveLimits, check_archive, extract_archive, open_member, read_member
from sources.base import ParseError

MB = 1024 * 1024


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extracts_plain_archive_into_destination_only(tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"layer.shp": b"shp", "layer.dbf": b"dbf", "docs/readme.txt": b"hi"})
    written = extract_archive("test", archive, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "docs/readme.txt",
        "layer.dbf",
        "layer.shp",
    ]
    assert (tmp_path / "out" / "layer.dbf").read_bytes() == b"dbf"


def test_accepts_bytes_as_well_as_paths(tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"a.csv": b"x,y\n1,2\n"})
    assert read_member("test", archive.read_bytes(), ".csv") == b"x,y\n1,2\n"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../escape.txt", "'..'"),
        ("safe/../../escape.txt", "'..'"),
        ("/etc/escape.txt", "absolute"),
        ("C:/escape.txt", "absolute"),
        ("..\\escape.txt", "'..'"),
    ],
)
def test_refuses_zip_slip_paths(tmp_path, name, reason):
    archive = _zip(tmp_path / "slip.zip", {"fine.txt": b"ok", name: b"evil"})
    with pytest.raises(ParseError) as caught:
        extract_archive("test", archive, tmp_path / "out")
    assert repr(name) in str(caught.value) and reason in str(caught.value)
    assert not (tmp_path / "escape.txt").exists()
    assert not any((tmp_path / "out").rglob("*")), (
        "nothing may be written before the whole archive is checked"
    )


def test_refuses_symlink_member(tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("link-to-passwd")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ParseError, match="'link-to-passwd'.*symbolic link"):
        extract_archive("test", path, tmp_path / "out")


def test_refuses_decompression_bomb_with_a_1_mb_cap(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(50 * MB)})
    assert archive.stat().st_size < MB  # 50 MB of zeros packs to about 50 kB
    with pytest.raises(ParseError, match="'zeros.bin'.*52428800 bytes.*per-member cap of 1048576"):
        extract_archive("test", archive, tmp_path / "out", ArchiveLimits(max_member_bytes=1 * MB))
    assert not (tmp_path / "out" / "zeros.bin").exists()


def test_refuses_decompression_bomb_by_ratio_under_default_caps(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(50 * MB)})
    with pytest.raises(ParseError, match="'zeros.bin'.*decompression bomb"):
        extract_archive("test", archive, tmp_path / "out")
    assert not (tmp_path / "out" / "zeros.bin").exists()


def test_refuses_archive_over_total_cap(tmp_path):
    archive = _zip(tmp_path / "many.zip", {f"part{i}.bin": bytes(600_000) for i in range(3)})
    limits = ArchiveLimits(max_total_bytes=1 * MB, max_member_bytes=1 * MB, max_ratio=1e9)
    with pytest.raises(ParseError, match="'part1.bin'.*expands to more than"):
        extract_archive("test", archive, tmp_path / "out", limits)


def test_refuses_too_many_members(tmp_path):
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(12)})
    with pytest.raises(ParseError, match="12 members"):
        check_archive("test", archive, ArchiveLimits(max_members=10))


def test_counts_real_bytes_when_header_lies(tmp_path):
    """A member whose directory entry understates its size is stopped by the counted bytes or the CRC."""
    path = _zip(tmp_path / "liar.zip", {"data.bin": bytes(range(256)) * 4096})  # 1 MiB
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("data.bin")
    # patch the uncompressed size in the central directory to 1,000 bytes
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    liar = tmp_path / "liar-patched.zip"
    liar.write_bytes(bytes(raw))
    assert info.file_size == 1024 * 1024
    with pytest.raises(ParseError, match="'data.bin'"):
        extract_archive("test", liar, tmp_path / "out", ArchiveLimits(max_ratio=1e9))


def test_corrupt_zip_bytes_are_a_parse_error(tmp_path):
    with pytest.raises(ParseError, match="not a readable zip"):
        check_archive("test", b"PK\x03\x04 this is not really a zip")
    good = _zip(tmp_path / "good.zip", {"a.txt": b"hello world " * 1000}).read_bytes()
    start = good.index(b"a.txt") + len(b"a.txt")
    damaged = good[:start] + bytes(b ^ 0xFF for b in good[start : start + 40]) + good[start + 40 :]
    with pytest.raises(ParseError, match="'a.txt'"):
        extract_archive("test", damaged, tmp_path / "out")


def test_open_member_streams_one_member_by_suffix_or_glob(tmp_path):
    archive = _zip(
        tmp_path / "bundle.zip",
        {"Cuencas_BNA.shp": b"S" * 10, "Cuencas_BNA.prj": b"PROJ", "notes/a.TXT": b"t"},
    )
    with open_member("test", archive, ".PRJ") as stream:
        assert stream.read() == b"PROJ"
    assert read_member("test", archive, "cuencas_*.shp") == b"S" * 10
    assert read_member("test", archive, "*.txt") == b"t"


def test_open_member_missing_or_ambiguous_lists_members(tmp_path):
    archive = _zip(tmp_path / "bundle.zip", {"a.csv": b"1", "b.csv": b"2"})
    with pytest.raises(ParseError, match=r"no member matching '\.xlsx'.*a\.csv"):
        read_member("test", archive, ".xlsx")
    with pytest.raises(ParseError, match="2 members matching"):
        read_member("test", archive, ".csv")


def test_open_member_refuses_hostile_archive_even_for_a_harmless_member(tmp_path):
    archive = _zip(tmp_path / "mixed.zip", {"ok.csv": b"1", "../evil.csv": b"2"})
    with pytest.raises(ParseError, match="'../evil.csv'"):
        read_member("test", archive, "ok.csv")


def test_open_member_caps_streamed_bytes(tmp_path):
    archive = _zip(tmp_path / "big.zip", {"zeros.bin": bytes(3 * MB)})
    limits = ArchiveLimits(max_member_bytes=4 * MB, max_ratio=1e9)
    assert len(read_member("test", archive, ".bin", limits)) == 3 * MB
    with pytest.raises(ParseError, match="per-member cap"):
        read_member("test", archive, ".bin", ArchiveLimits(max_member_bytes=MB, max_ratio=1e9))
