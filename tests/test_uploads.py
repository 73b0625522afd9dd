"""Uploaded training data within limits: zip bombs, traversal names, counts, malformed zips.

Every refusal must also leave nothing behind: `launch` removes the half-made run folder and
frees the lock, so the same run name can be used straight away.
"""

import io
import sys
import zipfile

import pytest

from qfitlatent.server_config import ServerConfig
from qfitlatent.train import jobs
from qfitlatent.uploads import UploadError, stage_uploads, structure_name

GB = 2**30


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A zip holding 1 GB of zeros in one .pdb member: about 1 MB compressed."""
    buf = io.BytesIO()
    chunk = bytes(2**20)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("bomb.pdb", "w", force_zip64=True) as out:
            for _ in range(1024):
                out.write(chunk)
    return buf.getvalue()


def test_a_one_gigabyte_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path, bomb):
    assert len(bomb) < 8 * 2**20  # small on the wire
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:
        assert zf.infolist()[0].file_size == GB
    with pytest.raises(UploadError, match="unpacks to 1024 MB"):
        stage_uploads(tmp_path / "d", [("set.zip", bomb)], ServerConfig(max_upload_mb=500))
    assert list((tmp_path / "d").iterdir()) == []


def test_a_bomb_under_the_total_still_meets_the_per_file_limit(tmp_path, bomb):
    limits = ServerConfig(max_upload_mb=2048, max_file_mb=100)
    with pytest.raises(UploadError, match="one file may be at most 100 MB"):
        stage_uploads(tmp_path / "d", [("set.zip", bomb)], limits)
    assert list((tmp_path / "d").iterdir()) == []


def test_launch_with_a_bomb_leaves_no_run_folder_and_the_name_is_reusable(
    tmp_path, bomb, monkeypatch
):
    monkeypatch.setattr(jobs, "train_command", lambda *a, **k: [sys.executable, "-c", "pass"])
    root = tmp_path / "runs"
    with pytest.raises(UploadError):
        jobs.launch("bombed", data=[("set.zip", bomb)], epochs=1, lr=1e-3, root=root)
    assert not (root / "bombed").exists() and jobs.lock_holder(root) is None
    job = jobs.launch("bombed", data=[("x.pdb", b"ATOM\n")], epochs=1, lr=1e-3, root=root)
    assert (job.path / "data" / "x.pdb").read_bytes() == b"ATOM\n"


@pytest.mark.parametrize(
    "member, stored",
    [
        ("../../escape.pdb", "escape.pdb"),
        ("/etc/evil.cif", "evil.cif"),
        ("..\\..\\win.pdb.gz", "win.pdb.gz"),
        ("deep/../../../../x.ent", "x.ent"),
        (".hidden.pdb", None),
        ("notes.txt", None),
        ("../..", None),
    ],
)
def test_member_names_lose_every_path_component(tmp_path, member, stored):
    assert structure_name(member) == stored
    data = zip_bytes({member: b"ATOM\n", "keep.pdb": b"ATOM\n"})
    dest = tmp_path / "runs" / "r" / "data"
    stage_uploads(dest, [("set.zip", data)], ServerConfig())
    assert sorted(p.name for p in dest.iterdir()) == sorted({"keep.pdb", stored} - {None})
    # Nothing outside the destination: the only files under tmp_path are the staged ones.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        {"keep.pdb", stored} - {None}
    )


def test_member_count_file_count_and_file_size_limits(tmp_path):
    many = zip_bytes({f"f{i}.pdb": b"ATOM\n" for i in range(6)})
    with pytest.raises(UploadError, match="6 entries; at most 5"):
        stage_uploads(tmp_path / "a", [("m.zip", many)], ServerConfig(max_zip_members=5))
    with pytest.raises(UploadError, match="more than 4 structure files"):
        stage_uploads(tmp_path / "b", [("m.zip", many)], ServerConfig(max_structures=4))
    big = [("big.pdb", b"A" * (2 * 2**20))]
    with pytest.raises(UploadError, match="at most 1 MB"):
        stage_uploads(tmp_path / "c", big, ServerConfig(max_file_mb=1))
    loose = [(f"g{i}.pdb", b"A" * 2**19) for i in range(5)]  # 2.5 MB in all, no zip
    with pytest.raises(UploadError, match="more than 2 MB"):
        stage_uploads(tmp_path / "d", loose, ServerConfig(max_upload_mb=2))


def test_two_files_with_one_name_are_refused_not_overwritten(tmp_path):
    data = zip_bytes({"a/x.pdb": b"1", "b/x.pdb": b"2"})
    with pytest.raises(UploadError, match="two uploaded files are called x.pdb"):
        stage_uploads(tmp_path / "d", [("set.zip", data)], ServerConfig())


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04garbage", b"not a zip at all", zip_bytes({"x.pdb": b"ATOM\n" * 50})[:-30]],
)
def test_a_malformed_zip_is_a_message(tmp_path, data):
    with pytest.raises(UploadError, match="not a readable zip"):
        stage_uploads(tmp_path / "d", [("set.zip", data)], ServerConfig())


def test_a_corrupted_member_is_a_message(tmp_path):
    good = bytearray(zip_bytes({"x.pdb": b"ATOM  " * 2000}))
    i = good.index(b"x.pdb") + 5 + 10  # inside the compressed data of the only member
    good[i] ^= 0xFF
    with pytest.raises(UploadError, match="not a readable zip"):
        stage_uploads(tmp_path / "d", [("set.zip", bytes(good))], ServerConfig())
