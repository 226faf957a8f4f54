"""PixMo-Count through a loopback Flickr REST API: retries, resume, skips, sha256, secrets."""
import json
import logging

import pytest

from fixtures.real_formats import FlickrServer, corrupt_jpeg, jpeg, sha, write_hub_split
from lmmcl.data.contract import read_split
from lmmcl.data.sources import convert
from lmmcl.data.sources.flickr import CredentialsError, FetchError, FlickrClient, photo_id_from_url

KEY, SECRET = "KEY-SENTINEL-91a7c3", "SECRET-SENTINEL-5be204"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("FLICKR_API_KEY", KEY)
    monkeypatch.setenv("FLICKR_API_SECRET", SECRET)
    for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def flickr():
    with FlickrServer() as srv:
        yield srv


def _meta_url(srv, pid):
    return srv.url(f"/farm/{pid}_abc123_z.jpg")


def _setup(srv, tmp_path):
    """Metadata rows (train split) and the server's photos; returns the metadata dir."""
    imgs = {i: jpeg(i, size=24) for i in range(10)}
    rows = []

    def photo(pid, label, count, *, largest=None, meta=None, sha_of=None, **flags):
        if largest is not None:
            path = f"/big/{pid}_s3cr3t_o.jpg"
            srv.files[path] = largest
            srv.photos[pid] = {"sizes": [f"/small/{pid}_q.jpg", path], **flags}
        elif flags:
            srv.photos[pid] = {"sizes": [], **flags}
        if meta is not None:
            srv.files[f"/farm/{pid}_abc123_z.jpg"] = meta
        rows.append({"image_url": _meta_url(srv, pid), "image_sha256": sha(sha_of), "count": count,
                     "points": [{"x": 1.0, "y": 2.0}] * count, "label": label})

    photo("101", "dogs", 3, largest=imgs[1], sha_of=imgs[1])                    # plain
    photo("102", "cat", 1, largest=imgs[2], sha_of=imgs[2], rest_429=2)         # 2 x 429 on getSizes
    photo("103", "cars", 2, fail=True, sha_of=imgs[3])                          # photo gone, URL 404
    photo("104", "birds", 4, largest=imgs[9], meta=imgs[4], sha_of=imgs[4])     # largest != annotated
    photo("105", "trees", 5, largest=imgs[5], sha_of=imgs[5])                   # image 429 once
    srv.img_429["/big/105_s3cr3t_o.jpg"] = 1
    photo("106", "cups", 6, largest=imgs[6], meta=imgs[7], sha_of=imgs[0])      # sha mismatch everywhere
    photo("107", "pens", 7, largest=corrupt_jpeg(), sha_of=corrupt_jpeg())      # corrupt, sha matches
    photo("108", "  ", 1, largest=imgs[8], sha_of=imgs[8])                      # empty label
    photo("109", "keys", 2, fail=True, sha_of=imgs[3])                          # error echoing the key
    src = tmp_path / "meta"
    write_hub_split(src, "train", rows, "pixmocount")
    write_hub_split(src, "validation", rows[:2], "pixmocount")
    write_hub_split(src, "test", rows[:1], "pixmocount")
    return src


def _opts(srv, tmp_path, src, **kw):
    return {"path": str(src), "cache_dir": str(tmp_path / "cache"), "image_dir": str(tmp_path / "images"),
            "rest_url": srv.rest_url, "min_interval": 0.0, "backoff": 0.01, "max_retries": 3, "timeout": 5.0, **kw}


def test_pixmocount_retry_skip_sha_resume_and_no_secrets(env, flickr, tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    src = _setup(flickr, tmp_path)
    # the loopback server echoes the api key in one failure message, like a careless API might
    flickr.photos["109"]["message_extra"] = KEY
    out = tmp_path / "data" / "pixmocount"
    rep = convert("pixmocount", out, **_opts(flickr, tmp_path, src))

    train = read_split(out / "train.parquet")
    assert train["id"] == ["pixmocount_train_000000", "pixmocount_train_000001", "pixmocount_train_000003",
                           "pixmocount_train_000004"]
    assert train["answer"] == ["There are 3 dogs in this image.", "There is 1 cat in this image.",
                               "There are 4 birds in this image.", "There are 5 trees in this image."]
    assert train["question"][0] == "How many dogs are in this image?"
    assert train["count"] == [3, 1, 4, 5]
    assert read_split(out / "validation.parquet")["answer"] == ["3", "1"]
    assert read_split(out / "test.parquet")["answer"] == ["3"]

    r = json.loads((out / "report.json").read_text())
    assert r["counts"]["train"] == {"seen": 9, "kept": 4, "skipped": 5}
    reasons = {s["id"]: s["reason"] for s in r["skipped"] if s["split"] == "train"}
    assert reasons["pixmocount_train_000002"].startswith("fetch failed: getSizes failed: Error: 1: Photo not found")
    assert "HTTP 404" in reasons["pixmocount_train_000002"]
    assert reasons["pixmocount_train_000005"].startswith("sha256 mismatch")
    assert reasons["pixmocount_train_000006"].startswith("corrupt image")
    assert reasons["pixmocount_train_000007"] == "empty label"
    assert r["flickr"]["retries_429"] >= 3  # 2 on getSizes (train) + 1 on an image download
    assert r["images"]["metadata_url"] == 1 and r["cleaning"]
    assert not (tmp_path / "images" / f"{sha(corrupt_jpeg())}.jpg").exists()  # corrupt file not kept
    assert any(f'oauth_consumer_key="{KEY}"' in h for h in flickr.auth_headers)  # credentials were used

    # resume: a second run fetches nothing that is already there (only failures are retried)
    n = len(flickr.log)
    convert("pixmocount", tmp_path / "again", **_opts(flickr, tmp_path, src))
    again = [what for _, what in flickr.log[n:]]
    for pid in ("101", "102", "104", "105"):
        assert not any(pid in w for w in again), (pid, again)
    assert (tmp_path / "again" / "train.parquet").read_bytes() == (out / "train.parquet").read_bytes()

    # secrets never appear in logs, reports or outputs
    captured = capfd.readouterr()
    blobs = [captured.out, captured.err, caplog.text, repr(rep.to_dict())]
    blobs += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file() and "cache" not in p.parts]
    for blob in blobs:
        assert KEY not in blob and SECRET not in blob
    assert "***" in reasons["pixmocount_train_000008"]


def test_missing_credentials_fail_before_any_download(monkeypatch, flickr, tmp_path, capsys):
    src = _setup(flickr, tmp_path)
    monkeypatch.delenv("FLICKR_API_KEY", raising=False)
    monkeypatch.setenv("FLICKR_API_SECRET", "x" * 8)
    with pytest.raises(CredentialsError, match=r"\['FLICKR_API_KEY'\]"):
        convert("pixmocount", tmp_path / "out", **_opts(flickr, tmp_path, src))
    monkeypatch.delenv("FLICKR_API_SECRET")
    from lmmcl.cli import main
    with pytest.raises(SystemExit) as e:
        main(["convert", "pixmocount", "--out-dir", str(tmp_path / "out"),
              "--options", json.dumps(_opts(flickr, tmp_path, src))])
    assert e.value.code == 2
    assert "['FLICKR_API_KEY', 'FLICKR_API_SECRET']" in capsys.readouterr().err
    assert flickr.log == [] and not (tmp_path / "out").exists() and not (tmp_path / "images").exists()


def test_backoff_doubles_on_429_and_gives_up(env, flickr):
    flickr.photos["7"] = {"sizes": ["/big/7_o.jpg"], "rest_429": 2}
    flickr.files["/big/7_o.jpg"] = b"x"
    sleeps = []
    c = FlickrClient(KEY, SECRET, rest_url=flickr.rest_url, min_interval=0, backoff=0.5, max_retries=5,
                     sleep=sleeps.append)
    assert c.largest_url("7") == flickr.url("/big/7_o.jpg")
    assert sleeps == [0.5, 1.0] and c.stats["retries_429"] == 2
    flickr.photos["8"] = {"sizes": ["/big/8_o.jpg"], "rest_429": 10}
    c = FlickrClient(KEY, SECRET, rest_url=flickr.rest_url, min_interval=0, backoff=0.5, max_retries=2,
                     sleep=sleeps.append)
    with pytest.raises(FetchError, match=r"gave up after 3 attempts \(HTTP 429\)"):
        c.largest_url("8")
    with pytest.raises(FetchError, match="HTTP 404"):
        c.download(flickr.url("/nothing.jpg"))


def test_rate_limit_spaces_calls(env, flickr):
    flickr.files["/a.jpg"] = b"a"
    sleeps = []
    c = FlickrClient(KEY, SECRET, rest_url=flickr.rest_url, min_interval=30.0, sleep=sleeps.append)
    c.download(flickr.url("/a.jpg"))
    c.download(flickr.url("/a.jpg"))
    assert len(sleeps) == 1 and 29.0 < sleeps[0] <= 30.0


def test_photo_id_from_url():
    assert photo_id_from_url("https://live.staticflickr.com/65535/52412345678_0a1b2c3d4e_z.jpg") == "52412345678"
    assert photo_id_from_url("http://farm4.staticflickr.com/3226/2815914396_bf8f1d6d8b.jpg") == "2815914396"
    assert photo_id_from_url("https://example.org/cat.jpg") is None
