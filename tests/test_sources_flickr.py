"""PixMo-Count through a loopback Flickr REST API: retries, resume, skips, sha256, secrets."""
import json
import logging

import pytest

from fixtures.source_formats import FlickrServer, corrupt_jpeg, jpeg, sha, write_hub_split
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


@pytest.fixture
def web(env, flickr, monkeypatch):
    """Plain-http requests to any other host (the metadata's staticflickr.com URLs, example.com)
    reach the loopback server through it as an HTTP proxy; the REST endpoint stays direct."""
    for v in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(v, flickr.url(""))
    return flickr


STATIC = "http://farm66.staticflickr.com"


def _meta_path(pid):
    return f"/65535/{pid}_abc123_z.jpg"


def _meta_url(srv, pid):
    return STATIC + _meta_path(pid)


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
            srv.files[_meta_path(pid)] = meta
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
    photo("109", "keys", 2, fail=True, sha_of=jpeg(30))                         # error echoing the key
    src = tmp_path / "meta"
    write_hub_split(src, "train", rows, "pixmocount")
    write_hub_split(src, "validation", rows[:2], "pixmocount")
    write_hub_split(src, "test", rows[:1], "pixmocount")
    return src


def _opts(srv, tmp_path, src, **kw):
    return {"path": str(src), "cache_dir": str(tmp_path / "cache"), "image_dir": str(tmp_path / "images"),
            "rest_url": srv.rest_url, "min_interval": 0.0, "backoff": 0.01, "max_retries": 3, "timeout": 5.0, **kw}


def test_pixmocount_retry_skip_sha_resume_and_no_secrets(web, flickr, tmp_path, capfd, caplog):
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
    assert reasons["pixmocount_train_000002"] == (
        "fetch failed: metadata_url: HTTP 404 for image; getSizes failed: Error: 1: Photo not found")
    assert reasons["pixmocount_train_000005"].startswith("sha256 mismatch")
    assert reasons["pixmocount_train_000006"].startswith("corrupt image")
    assert reasons["pixmocount_train_000007"] == "empty label"
    assert r["flickr"]["retries_429"] >= 3  # 2 on getSizes (train) + 1 on an image download
    assert r["images"] == {"cached": 3, "metadata_url": 1, "largest": 3} and r["cleaning"]
    # cost with verify_sha256: the metadata URL first; getSizes only where it failed or did not
    # match (all but 104): 101, 102 (3 attempts: two 429s), 103, 105, 106, 107, 109
    rest = [what for kind, what in flickr.log if kind == "rest"]
    assert "104" not in rest and sorted(set(rest)) == ["101", "102", "103", "105", "106", "107", "109"]
    assert r["flickr"]["api_calls"] == len(rest) == 9
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


def test_missing_credentials_fail_before_any_download(monkeypatch, web, flickr, tmp_path, capsys):
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


@pytest.mark.parametrize("url,pid", [
    ("https://live.staticflickr.com/65535/52412345678_0a1b2c3d4e_z.jpg", "52412345678"),
    ("https://farm4.staticflickr.com/3226/2815914396_bf8f1d6d8b_b.jpg", "2815914396"),
    ("http://c1.staticflickr.com/1/2/123_abc_o.jpg", "123"),
    ("https://LIVE.STATICFLICKR.COM/65535/52412345678_0a1b2c3d4e_z.jpg?zz=1", "52412345678"),
    (" https://live.staticflickr.com/65535/52412345678_0a1b2c3d4e_z.jpg ", "52412345678"),
    # not the study's pattern / not a staticflickr host: no photo id
    ("https://example.com/img/2019_abc.jpg", None),
    ("https://example.com/img/2019_abc_z.jpg", None),
    ("https://staticflickr.com.evil.example/1/2019_abc_z.jpg", None),
    ("https://notstaticflickr.com/1/2019_abc_z.jpg", None),
    ("http://farm4.staticflickr.com/3226/2815914396_bf8f1d6d8b.jpg", None),   # no size letter
    ("https://live.staticflickr.com/65535/52412345678_0a1b2c3d4e_3k.jpg", None),
    ("https://live.staticflickr.com/65535/52412345678_0a1b2c3d4e_z.png", None),
    ("https://www.flickr.com/photos/someone/52412345678/", None),
    ("ftp://live.staticflickr.com/65535/52412345678_0a1b2c3d4e_z.jpg", None),
    ("/65535/52412345678_0a1b2c3d4e_z.jpg", None), ("", None), ("http://[::1", None),
])
def test_photo_id_only_from_static_flickr_urls(url, pid):
    assert photo_id_from_url(url) == pid


def _rows(srv, specs):
    """specs: (image_url or None for the static URL of pid, pid, sha of, label, count)."""
    return [{"image_url": url if url is not None else _meta_url(srv, pid), "image_sha256": sha(of),
             "count": count, "points": [], "label": label} for url, pid, of, label, count in specs]


def test_one_row_per_image_like_the_study_or_every_label(web, flickr, tmp_path):
    a, b = jpeg(41), jpeg(42)
    flickr.files[_meta_path("201")] = a
    flickr.files[_meta_path("202")] = b
    rows = _rows(flickr, [(None, "201", a, "dogs", 3), (None, "201", a, "puppies", 3), (None, "202", b, "cats", 2),
                          (None, "201", a, "dogs", 3), (None, "202", b, "kittens", 2)])
    src = tmp_path / "meta"
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, rows, "pixmocount")

    out = tmp_path / "study"
    rep = convert("pixmocount", out, **_opts(flickr, tmp_path, src, image_dir=str(tmp_path / "img1")))
    train = read_split(out / "train.parquet")
    assert train["id"] == ["pixmocount_train_000000", "pixmocount_train_000002"]
    assert train["label"] == ["dogs", "cats"]                   # the first label of each image
    assert read_split(out / "test.parquet")["answer"] == ["3", "2"]
    r = json.loads((out / "report.json").read_text())
    assert r["counts"]["train"] == {"seen": 5, "kept": 2, "skipped": 3}
    dup = {s["id"]: s["reason"] for s in r["skipped"] if s["split"] == "train"}
    assert dup["pixmocount_train_000001"] == \
        "duplicate image_sha256: row pixmocount_train_000000 kept (label 'puppies' dropped)"
    assert r["skipped_by_reason"] == {"duplicate image_sha256": 9}
    assert r["rows_per_image"].startswith("one (the first label) per image_sha256")
    assert rep.extra["images"] == {"cached": 4, "metadata_url": 2, "largest": 0}
    assert [k for k, _ in flickr.log] == ["img", "img"]        # 2 images: 2 downloads, no API call

    out = tmp_path / "every"
    convert("pixmocount", out, **_opts(flickr, tmp_path, src, image_dir=str(tmp_path / "img1"), keep_all_labels="true"))
    train = read_split(out / "train.parquet")
    assert train["label"] == ["dogs", "puppies", "cats", "kittens"]
    r = json.loads((out / "report.json").read_text())
    assert r["skipped_by_reason"] == {"duplicate (image_sha256, label)": 3}
    assert len(flickr.log) == 2                                 # every image came from the cache


def test_urls_outside_the_pattern_are_downloaded_as_they_are(web, flickr, tmp_path):
    """An id comes only from a static-Flickr URL: example.com's '2019_abc.jpg' is no photo 2019
    (which the server does hold, with another image), even unverified."""
    ours, unrelated, meta, large = jpeg(51), jpeg(52), jpeg(53), jpeg(54)
    flickr.files["/img/2019_abc.jpg"] = ours
    flickr.photos["2019"] = {"sizes": ["/big/2019_x_o.jpg"]}
    flickr.files["/big/2019_x_o.jpg"] = unrelated
    flickr.files["/1/2020_abc.jpg"] = meta
    flickr.photos["2022"] = {"sizes": ["/big/2022_x_o.jpg"]}
    flickr.files["/big/2022_x_o.jpg"] = large
    flickr.files[_meta_path("2022")] = meta
    rows = _rows(flickr, [("http://example.com/img/2019_abc.jpg", None, ours, "cats", 1),
                          (STATIC + "/1/2020_abc.jpg", None, meta, "cups", 2),          # no size letter
                          ("ftp://farm1.staticflickr.com/1/2021_abc_z.jpg", None, jpeg(55), "dogs", 1),
                          ("", None, jpeg(56), "pens", 1),
                          (None, "2022", jpeg(57), "keys", 3)])                         # the study's way
    src = tmp_path / "meta"
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, rows, "pixmocount")
    out = tmp_path / "px"
    rep = convert("pixmocount", out, **_opts(flickr, tmp_path, src, verify_sha256=False))
    import datasets
    train = read_split(out / "train.parquet").cast_column("image", datasets.Image(decode=False))
    assert train["label"] == ["cats", "cups", "keys"]
    got = [sha(im["bytes"]) for im in train["image"]]
    assert got == [sha(ours), sha(meta), sha(large)]            # the last: unverified largest size, as the study
    assert sha(unrelated) not in got
    assert [w for k, w in flickr.log if k == "rest"] == ["2022"]
    assert ("img", "/big/2019_x_o.jpg") not in flickr.log
    reasons = [s["reason"] for s in rep.skipped if s["split"] == "train"]
    assert reasons == ["image_url is not an http(s) URL: 'ftp://farm1.staticflickr.com/1/2021_abc_z.jpg'",
                       "image_url is not an http(s) URL: ''"]
    assert rep.extra["images"]["largest"] == 1 and rep.extra["images"]["metadata_url"] == 2


def test_failed_image_is_not_fetched_again_and_bad_sha_is_skipped(web, flickr, tmp_path):
    rows = _rows(flickr, [(None, "301", jpeg(61), "dogs", 1), (None, "301", jpeg(61), "cats", 2)])
    rows.append({**rows[0], "image_sha256": "not-a-sha"})
    src = tmp_path / "meta"
    for split in ("train", "validation", "test"):
        write_hub_split(src, split, rows, "pixmocount")
    with pytest.raises(ValueError, match=r"split 'train' has no usable record \(3 row\(s\) read, skipped by reason: "
                                         r"\{'bad image_sha256': 3, 'fetch failed': 1, 'image failed earlier in this "
                                         r"run': 5\}; e\.g\. pixmocount_train_000000: fetch failed: metadata_url: HTTP 404"):
        convert("pixmocount", tmp_path / "px", **_opts(flickr, tmp_path, src, keep_all_labels=True))
    assert flickr.log == [("img", _meta_path("301")), ("rest", "301")]   # one try for both rows of the image
    assert not (tmp_path / "px").exists() or not any((tmp_path / "px").iterdir())
