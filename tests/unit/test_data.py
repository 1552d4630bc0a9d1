from __future__ import annotations

from pathlib import Path

import pytest
from prunetune.trainables.data import DataError, load_labelled, load_scored_pairs, sample_texts

from prunetune.config import DataConfig


def write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")


def test_csv_with_custom_columns_and_deterministic_labels(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "Text,Label\nalpha,b\nbeta,a\ngamma,c\ndelta,a\n")
    write(tmp_path, "dev.csv", "Text,Label\nepsilon,c\n")
    data = load_labelled(DataConfig(source=str(tmp_path)))
    assert data.label_names == ("a", "b", "c")
    assert data.train.targets == (1, 0, 2, 0)
    assert data.validation.texts == ("epsilon",) and data.validation.targets == (2,)


def test_jsonl_and_parquet_sources(tmp_path: Path) -> None:
    import pandas as pd

    write(tmp_path / "j", "train.jsonl", '{"sentence": "x", "label": 1}\n{"sentence": "y", "label": 0}\n')
    write(tmp_path / "j", "validation.jsonl", '{"sentence": "z", "label": 1}\n')
    data = load_labelled(DataConfig(source=str(tmp_path / "j")))
    assert data.label_names == ("0", "1") and data.train.targets == (1, 0)
    (tmp_path / "p").mkdir()
    pd.DataFrame({"content": ["u", "v"], "category": ["x", "y"]}).to_parquet(tmp_path / "p" / "train.parquet")
    pd.DataFrame({"content": ["w"], "category": ["y"]}).to_parquet(tmp_path / "p" / "validation.parquet")
    data = load_labelled(DataConfig(source=str(tmp_path / "p")))
    assert data.validation.targets == (1,)


def test_bad_rows_are_errors_with_file_and_line_or_counted_skips(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "text,labels\ngood,a\n  ,a\nother,b\nno label,\n")
    write(tmp_path, "validation.csv", "text,labels\nfine,a\n")
    with pytest.raises(DataError, match=r"train.csv:3: empty text in column 'text'.*on_bad_row=skip"):
        load_labelled(DataConfig(source=str(tmp_path)))
    data = load_labelled(DataConfig(source=str(tmp_path), on_bad_row="skip"))
    assert data.train.texts == ("good", "other")
    assert data.report.total == 2
    assert "train.csv:5" in data.report.summary()


def test_unknown_label_missing_column_and_missing_split(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "text,labels\na,x\nb,y\n")
    write(tmp_path, "validation.csv", "text,labels\nc,z\n")
    with pytest.raises(DataError, match=r"validation.csv:2: label 'z' does not occur in the training split"):
        load_labelled(DataConfig(source=str(tmp_path)))
    with pytest.raises(DataError, match=r"no column 'body' for the text; its columns are \['text', 'labels'\]"):
        load_labelled(DataConfig(source=str(tmp_path), text_column="body"))
    write(tmp_path, "validation.csv", "text,labels\nc,x\n")
    with pytest.raises(DataError, match="has no 'test' split.*data.test_split"):
        load_labelled(DataConfig(source=str(tmp_path), test_split="test"))
    with pytest.raises(DataError, match="neither a preset"):
        load_labelled(DataConfig(source="./nowhere"))
    with pytest.raises(DataError, match="indicnews:<language>:<shc|lpc|ldc>"):
        load_labelled(DataConfig(source="indicnews:marathi"))


def test_ragged_row_is_named(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "text,labels\na,x\nb,y,extra\n")
    write(tmp_path, "validation.csv", "text,labels\nc,x\n")
    with pytest.raises(DataError, match="train.csv:3: 3 fields where the header has 2"):
        load_labelled(DataConfig(source=str(tmp_path)))


def test_real_indicnews_english_quirks(data_env: Path) -> None:
    config = DataConfig(source="indicnews:english:shc", on_bad_row="skip")
    data = load_labelled(config)
    assert len(data.label_names) == 12 and "" not in data.label_names
    # The 272 rows with a blank text (the 20 with a blank label among them) are skipped and counted.
    train_skips = [loc for locs in data.report.skipped.values() for loc in locs if "train.csv" in loc]
    assert len(train_skips) == 272
    assert len(data.train) + len(train_skips) == 36877
    assert len(data.validation) > 4500
    with pytest.raises(DataError, match=r"train.csv:\d+: empty text"):
        load_labelled(DataConfig(source="indicnews:english:shc"))


def test_real_indicnews_marathi_repeated_headers_are_skipped_and_counted(data_env: Path) -> None:
    data = load_labelled(DataConfig(source="indicnews:marathi:shc", train_split="validation", validation_split="test"))
    assert len(data.label_names) == 12 and "Label" not in data.label_names
    headers = [loc for problem, locs in data.report.skipped.items() if "header" in problem for loc in locs]
    assert headers and all("rows)" in h for h in headers)
    assert len(data.validation) + sum(int(h.rsplit("(", 1)[1].split()[0]) for h in headers if "test.csv" in h) == 2772


def test_real_stsb_layout_with_trailing_fields(data_env: Path) -> None:
    data = load_scored_pairs(DataConfig(source="stsb:en", test_split="test"))
    assert len(data.train) == 5749 and len(data.validation) == 1500 and len(data.test) == 1379
    assert all(0.0 <= s <= 1.0 for s in data.train.targets)
    assert data.train.texts[0] == "A plane is taking off." and data.train.pairs[0] == "An air plane is taking off."
    marathi = load_scored_pairs(DataConfig(source="stsb:mr", max_train_rows=100))
    assert len(marathi.train) == 100


def test_real_rte_as_pairs_and_seeded_slices(data_env: Path) -> None:
    config = DataConfig(source="glue:rte", max_train_rows=200, max_eval_rows=50)
    first, again = load_labelled(config, pairs=True), load_labelled(config, pairs=True)
    assert first.label_names == ("entailment", "not_entailment")
    assert first.train.pairs is not None and len(first.train) == 200 and len(first.validation) == 50
    assert first.train == again.train
    other = load_labelled(DataConfig(source="glue:rte", max_train_rows=200, sample_seed=1), pairs=True)
    assert other.train != first.train
    assert sample_texts(config, 10) == sample_texts(config, 10)


def test_reading_a_csv_leaves_the_process_wide_field_limit_as_it_was(tmp_path) -> None:
    import csv

    from prunetune.trainables.readers import read_rows

    path = tmp_path / "train.csv"
    path.write_text("text,label\n" + "x" * 200_000 + ",a\n")  # a field longer than csv's default limit
    before = csv.field_size_limit()
    rows = list(read_rows(path))
    assert len(rows[0][1]["text"]) == 200_000
    assert csv.field_size_limit() == before


def test_a_download_is_checked_against_its_pinned_checksum_and_cached_only_then(tmp_path, monkeypatch) -> None:
    """A real HTTP server on loopback serves two files; the one whose SHA-256 differs from the pinned one is
    refused and never cached."""
    import functools
    import hashlib
    import http.server
    import threading

    from prunetune.trainables import sources

    served = tmp_path / "served"
    served.mkdir()
    (served / "good.csv").write_text("text,label\na,b\n")
    (served / "changed.csv").write_text("text,label\nsomething else,b\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pinned = {
        f"{base}/good.csv": hashlib.sha256((served / "good.csv").read_bytes()).hexdigest(),
        f"{base}/changed.csv": hashlib.sha256(b"what it was at the pinned commit").hexdigest(),
    }
    monkeypatch.setattr(sources, "PINNED_SHA256", pinned)
    monkeypatch.setenv("PRUNETUNE_CACHE_DIR", str(tmp_path / "cache"))
    try:
        assert sources.download(f"{base}/good.csv").read_text() == "text,label\na,b\n"
        with pytest.raises(DataError, match="changed.csv: its SHA-256 is .* refusing a changed or tampered file"):
            sources.download(f"{base}/changed.csv")
    finally:
        server.shutdown()
    assert [p.name for p in (tmp_path / "cache").rglob("*.csv")] == ["good.csv"]
    assert sources.INDICNEWS_COMMIT in sources.INDICNEWS_REPO  # presets download from a commit, not a branch


def test_the_pinned_checksums_match_the_published_files(shared_data) -> None:
    import hashlib

    from prunetune.trainables.pinned import INDICNEWS_SHA256, STSB_MR_SHA256
    from prunetune.trainables.sources import PINNED_SHA256, preset

    for pinned, copy in (
        (INDICNEWS_SHA256["English/SHC/English_train_shc.csv"], "indicnews-english-shc/train.csv"),
        (INDICNEWS_SHA256["English/SHC/English_valid_shc.csv"], "indicnews-english-shc/validation.csv"),
        (INDICNEWS_SHA256["Marathi/SHC/Marathi_SHC_Test.csv"], "indicnews-marathi-shc/test.csv"),
        (STSB_MR_SHA256["sts-train-mr.tsv"], "stsb-marathi/train.tsv"),
        (STSB_MR_SHA256["sts-dev-mr.tsv"], "stsb-marathi/dev.tsv"),
        (STSB_MR_SHA256["sts-test-mr.tsv"], "stsb-marathi/test.tsv"),
    ):
        assert pinned == hashlib.sha256((shared_data / copy).read_bytes()).hexdigest(), copy
    marathi_sts = preset("stsb:mr")
    assert marathi_sts is not None  # its downloads come from a commit, each checked against its sum
    assert all(url in PINNED_SHA256 and "/main/" not in url for url in marathi_sts.remote.files.values())


def test_the_data_dir_is_the_environments_else_the_cache_and_presets_are_found_there(tmp_path, monkeypatch) -> None:
    from prunetune.trainables import sources

    monkeypatch.delenv("PRUNETUNE_DATA_DIR", raising=False)
    monkeypatch.setenv("PRUNETUNE_CACHE_DIR", str(tmp_path / "cache"))
    assert sources.default_data_dir() == tmp_path / "cache" / "data"
    write(tmp_path / "cache" / "data" / "glue-rte", "train.tsv", "index\tsentence1\tsentence2\tlabel\n")
    assert sources.resolve(DataConfig(source="glue:rte")).files["train"].endswith("glue-rte/train.tsv")
    monkeypatch.setenv("PRUNETUNE_DATA_DIR", str(tmp_path / "mine"))
    assert sources.default_data_dir() == tmp_path / "mine"
    assert sources.resolve(DataConfig(source="glue:rte")).hub_id == "nyu-mll/glue"  # no copy there
    assert sources.data_dir(DataConfig(source="glue:rte", data_dir=str(tmp_path / "cache" / "data"))) == (
        tmp_path / "cache" / "data"
    )


def test_data_list_says_which_presets_have_a_local_copy(tmp_path, capsys) -> None:
    from prunetune import cli

    write(tmp_path / "indicnews-english-shc", "train.csv", "text,labels\na,b\n")
    assert cli.main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert (
        "present" in lines["indicnews:english:shc"]
        and str(tmp_path / "indicnews-english-shc") in lines["indicnews:english:shc"]
    )
    assert "prunetune data fetch indicnews:marathi:shc" in lines["indicnews:marathi:shc"]
    assert "mteb/stsbenchmark-sts" in lines["stsb:en"] and "hub" in lines["glue:rte"]


def refused_url() -> str:
    """A loopback address nothing listens on: a connection to it is refused at once, as offline."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/indic-nlp"


def test_data_fetch_offline_fails_in_one_line_naming_the_url_and_the_folder(tmp_path, monkeypatch, capsys) -> None:
    from prunetune.trainables import sources

    from prunetune import cli

    repo = refused_url()
    monkeypatch.setattr(sources, "INDICNEWS_REPO", repo)
    assert cli.main(["data", "fetch", "indicnews:english:shc", "--data-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith("prunetune data fetch: could not download ") and f"{repo}/English/SHC/" in error
    assert f"copy the preset's train/validation/test files into {tmp_path / 'indicnews-english-shc'}" in error
    assert list(tmp_path.iterdir()) == []  # nothing half-fetched left behind


def test_data_fetch_downloads_every_split_checked_into_the_presets_folder(tmp_path, monkeypatch, capsys) -> None:
    """From a loopback server laid out like the pinned repository; a pinned checksum is checked on the way."""
    import functools
    import hashlib
    import http.server
    import threading

    from prunetune.trainables import sources

    from prunetune import cli

    served = tmp_path / "served"
    for split in ("train", "valid", "test"):
        write(served / "English" / "SHC", f"English_{split}_shc.csv", f"text,labels\n{split} headline,sport\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    repo = f"http://127.0.0.1:{server.server_address[1]}"
    train = served / "English" / "SHC" / "English_train_shc.csv"
    monkeypatch.setattr(sources, "INDICNEWS_REPO", repo)
    monkeypatch.setattr(
        sources,
        "PINNED_SHA256",
        {f"{repo}/English/SHC/English_train_shc.csv": hashlib.sha256(train.read_bytes()).hexdigest()},
    )
    data = tmp_path / "data"
    try:
        assert cli.main(["data", "fetch", "indicnews:english:shc", "--data-dir", str(data)]) == 0
        assert cli.main(["data", "fetch", "indicnews:english:shc", "--data-dir", str(data)]) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert f"fetched into {data / 'indicnews-english-shc'}" in out and "is already in" in out
    folder = data / "indicnews-english-shc"
    assert sorted(p.name for p in folder.iterdir()) == ["test.csv", "train.csv", "validation.csv"]
    assert (folder / "train.csv").read_bytes() == train.read_bytes()
    source = sources.resolve(DataConfig(source="indicnews:english:shc", data_dir=str(data)))
    assert source.files["validation"] == str(folder / "validation.csv")


def test_data_fetch_names_a_hub_preset_and_an_unknown_one(tmp_path, capsys) -> None:
    from prunetune import cli

    assert cli.main(["data", "fetch", "glue:rte", "--data-dir", str(tmp_path)]) == 2
    assert "hub data set nyu-mll/glue" in capsys.readouterr().err
    assert cli.main(["data", "fetch", "imdb", "--data-dir", str(tmp_path)]) == 2
    assert "'imdb' is not a preset; `prunetune data list` lists them" in capsys.readouterr().err


def test_every_indicnews_file_pinned_is_among_its_presets_urls() -> None:
    """The repository names some files its own way (Bengali/SHC/Bengal_SHC_Train.csv): a preset whose URLs
    missed them could never be downloaded."""
    from prunetune.trainables.pinned import INDICNEWS_SHA256
    from prunetune.trainables.sources import preset

    urls = set()
    for name in {"indicnews:" + ":".join(path.split("/")[:2]).lower() for path in INDICNEWS_SHA256}:
        found = preset(name)
        assert found is not None
        urls |= {url for files in found.remote.files.values() for url in files.split()}
    assert all(any(url.endswith("/" + path) for url in urls) for path in INDICNEWS_SHA256)
