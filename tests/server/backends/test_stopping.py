from server.backends.stopping import StopScanner


def feed_all(scanner: StopScanner, pieces: list[str]) -> str:
    return "".join(scanner.feed(piece) for piece in pieces) + scanner.flush()


def test_text_without_stops_passes_through() -> None:
    assert feed_all(StopScanner([]), ["Hel", "lo"]) == "Hello"


def test_stop_split_across_pieces_is_cut_and_never_emitted() -> None:
    scanner = StopScanner(["</end>"])
    emitted = [scanner.feed(piece) for piece in ["Hi </", "en", "d> more"]]
    assert emitted == ["Hi ", "", ""]
    assert scanner.stopped
    assert scanner.flush() == ""


def test_held_prefix_is_released_when_it_was_not_a_stop() -> None:
    scanner = StopScanner(["STOP"])
    assert scanner.feed("a ST") == "a "
    assert scanner.feed("ART") == "START"
    assert scanner.flush("ST") == "ST"
    assert not scanner.stopped


def test_earliest_of_several_stops_wins() -> None:
    assert feed_all(StopScanner(["b", "a"]), ["xxabc"]) == "xx"
