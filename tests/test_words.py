from lwlocal.write.words import count_words, ends_sentence


def test_counts_english_words_and_chinese_characters():
    assert count_words("The quick brown fox.") == 4
    assert count_words("长文本生成") == 5
    assert count_words("LongWriter 写了 10,000 words") == 5
    assert count_words("  \n ") == 0


def test_sentence_end():
    assert ends_sentence("It ended.")
    assert ends_sentence('He said "stop!" ')
    assert ends_sentence("结束了。")
    assert ends_sentence("a line\n")
    assert not ends_sentence("in the middle of")
