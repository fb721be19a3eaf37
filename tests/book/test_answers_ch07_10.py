"""Exercise answers and checks of chapters 7 and 10: the expected values
follow from the package, and function checks say where a reader's version
differs."""

from gemma4_lite import Gemma4Config
from gemma4_lite.book.accounting import (
    count_parameters,
    kv_cache_bytes,
    layer_parameters,
)
from gemma4_lite.book.answers import ch07, ch10
from gemma4_lite.book.exercises import check, expected


def test_two_matrix_mlp_removes_one_matrix_per_layer():
    c = Gemma4Config.from_preset("31b")
    mlp = count_parameters(c)["mlp"]
    # three matrices of H x 4H become two: a third of the MLP goes
    want = (count_parameters(c)["total"] - mlp // 3) / 1e9
    assert abs(ch07.two_matrix_31b_billions() - want) < 1e-9
    assert check("7.1", 23.8).endswith("correct.")
    assert "not quite" in check("7.1", 30.7)


def test_int4_context_is_the_last_that_fits():
    c = Gemma4Config.from_preset("26b-a4b")
    n = ch07.int4_context_26b_16gb()
    weights = count_parameters(c)["total"] // 2
    assert n % 1024 == 0
    assert weights + kv_cache_bytes(c, n) <= 16e9
    assert weights + kv_cache_bytes(c, n + 1024) > 16e9


def test_layer_total_check_names_the_layer():
    def right(config, layer):
        return sum(layer_parameters(config, layer).values())

    def forgets_q_norm(config, layer):
        return right(config, layer) - config.head_dim_for(layer)

    assert ch07.validate_layer_total(right) is True
    message = ch07.validate_layer_total(forgets_q_norm)
    assert message.startswith("12B layer 0 (sliding)")
    assert "off by -256" in message


def test_chapter_10_answers():
    e2b = Gemma4Config.from_preset("e2b")
    # three global layers keep their own cache: 1 KV head x 512 x K,V x 2 B
    own_global = [i for i in e2b.global_layers if not e2b.is_kv_shared(i)]
    assert expected("10.1")[0] == len(own_global) * 512 * 2 * 2 == 6144
    value, precision = expected("10.3")
    # subtracting the rounded table entries (3.79 - 2.17) is not accepted
    assert round(value, 2) == 1.63
    assert not precision.accepts(1.62, value)


def test_kv_producer_check():
    assert ch10.validate_kv_producer(lambda c, i: c.kv_producer(i)) is True
    message = ch10.validate_kv_producer(lambda c, i: i)
    assert message.startswith("E2B, layer 15 (sliding, shared cache)")

    def fitted(c, i):  # right on the released E2B only
        if not c.is_kv_shared(i):
            return i
        return 13 if c.is_sliding(i) else 14

    assert "E4B, layer 24" in ch10.validate_kv_producer(fitted)

    def stub(c, i):
        raise NotImplementedError

    verdict = check("10.2", stub, validate=ch10.validate_kv_producer)
    assert "not attempted" in verdict
