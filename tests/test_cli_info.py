"""``evstream info`` on the real samples and on bad files."""

from sample_oracle import ORACLE, sample

from evstream.cli import main


def test_info_table_on_samples(capsys):
    names = sorted(ORACLE)
    assert main(["info", *map(str, map(sample, names))]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.endswith(("0", "-"))}
    for name in names:
        assert f"{ORACLE[name][0]:,}" in lines[name]
    assert "RAW EVT 3.0  1280x720" in lines["expelliarmus_evt3_sample.raw"]
    assert "4,096" in lines["expelliarmus_evt3_sample.raw"]          # time-shifted first event
    assert "0.095871" in lines["faery_evt2.raw"]                      # duration in seconds
    assert "DAT" in lines["tonic_sample_ncars.dat"] and " ? " in lines["tonic_sample_ncars.dat"]


def test_info_bad_file_exits_non_zero_with_a_reason(tmp_path, capsys):
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"\x00\x01\x02")
    assert main(["info", str(sample("faery_evt2.raw")), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "faery_evt2.raw" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}:")
