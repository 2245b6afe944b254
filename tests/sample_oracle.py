"""The real third-party recordings in ../shared/samples (never copied here) and their oracle."""

from pathlib import Path

#: ``shared/`` sits beside the repository root (locally and in CI's fresh clone).
SAMPLES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "samples"

#: Decoding oracle from shared/samples/README.md (OpenEB rules, no time shifting):
#: events, first (t, x, y, p), last (t, x, y, p), sum t, sum x, sum y, ON count, distinct t.
ORACLE = {
    "expelliarmus_evt3_sample.raw": (219596, (11718656, 874, 200, 0), (11727457, 1218, 572, 1),
                                     2574324900467, 159113225, 85638051, 115532, 8802),
    "expelliarmus_evt2_sample.raw": (539481, (1317888, 237, 121, 1), (1367888, 210, 142, 1),
                                     724340275912, 171811022, 110162026, 367855, 50001),
    "faery_evt2.raw": (521252, (913716224, 35, 443, 1), (913812095, 12, 471, 0),
                       476298094656969, 128979953, 216346680, 185861, 79493),
    "tonic_sample_ncars.dat": (2009, (0, 25, 8, 0), (99952, 75, 28, 1), 98196680, 93457, 40463,
                               1350, 1830),
}
#: With OpenEB's default time shifting: (first t, last t) per RAW sample.
SHIFTED_SPAN = {"expelliarmus_evt3_sample.raw": (4096, 12897),
                "expelliarmus_evt2_sample.raw": (0, 50000),
                "faery_evt2.raw": (0, 95871)}


def sample(name: str) -> Path:
    """Path of a sample recording (fails loudly when shared/ is not beside the repo)."""
    path = SAMPLES_DIR / name
    assert path.is_file(), f"sample recording {path} missing: shared/ must sit beside the repo"
    return path
