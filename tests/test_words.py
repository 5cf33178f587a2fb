from lwlocal.write.words import WordCounter, count_words, ends_sentence, trim_to_sentence


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


def test_counter_matches_count_words_whatever_the_pieces():
    text = "LongWriter 写了 10,000 words. Then it stopped!\nNew line 长文本 end"
    for size in (1, 2, 3, 7):
        counter = WordCounter()
        for i in range(0, len(text), size):
            counter.add(text[i:i + size])
            assert counter.count == count_words(text[: i + size])
        assert counter.tail == text[-16:]


def test_trim_to_sentence():
    assert trim_to_sentence("One. Two! Three is cut") == "One. Two!"
    assert trim_to_sentence('He said "go." Then') == 'He said "go."'
    assert trim_to_sentence("写完了。还没") == "写完了。"
    assert trim_to_sentence("no end at all") == "no end at all"
    assert trim_to_sentence("version 3.5 is out") == "version 3.5 is out"
