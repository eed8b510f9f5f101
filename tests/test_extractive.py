"""Extractive answers (no LLM): which sentences are quoted, over the real seed index and model."""

import numpy as np
import pytest

from rag.extractive import extract_answer, language_pulls
from rag.language import detect_language


def _pulls(assistant, question, query, hits):
    settings = assistant.settings
    return language_pulls(assistant.store.centroids(), query, hits, detect_language(question),
                          settings.language_calibration, settings.same_language_calibration)


def test_language_pulls_weigh_more_on_passages_in_the_questions_language(seed_assistant):
    question = "Ai đứng đầu Ban Quản lý các khu công nghệ cao và khu công nghiệp Hà Nội?"
    query = seed_assistant.embedder.embed_query(question)
    hits = seed_assistant.search(question, 37)
    pulls = _pulls(seed_assistant, question, query, hits)
    assert len(pulls) == len(hits)
    own = [pull for hit, pull in zip(hits, pulls) if hit.passage.lang == "vi"]
    other = [pull for hit, pull in zip(hits, pulls) if hit.passage.lang != "vi"]
    assert own and other and min(own) > max(other)


def test_a_pull_taken_off_a_passage_lowers_only_its_sentences(seed_assistant):
    question = "What did Thanh Hoa agree with Yamanashi?"  # no answer type: every passage's sentences may answer
    query = seed_assistant.embedder.embed_query(question)
    hits = seed_assistant.search(question, 5)
    sentences = seed_assistant.store.sentence_vectors(hit.passage.row_id for hit in hits)
    plain = extract_answer(question, query, hits, sentences)
    cited = {c.hit.passage.row_id for c in plain.citations}
    # a large pull on every cited passage moves the answer to the other passages
    pulls = np.array([1.0 if hit.passage.row_id in cited else 0.0 for hit in hits])
    moved = extract_answer(question, query, hits, sentences, pulls)
    assert moved.citations and not cited & {c.hit.passage.row_id for c in moved.citations}


def test_a_vietnamese_question_about_a_malay_article_quotes_it_not_the_vietnamese_one(seed_assistant):
    # the Vietnamese article (TP HCM and Daejeon) scores higher for any Vietnamese question before the correction
    question = "Ai đứng đầu Ban Quản lý các khu công nghệ cao và khu công nghiệp Hà Nội?"
    answer = seed_assistant.answer(question, use_llm=False)
    assert not answer.refused and "Vu Xuan Hung" in answer.text


def test_a_which_place_question_quotes_a_sentence_naming_such_a_place_and_is_not_refused_without_one(seed_assistant):
    question = "Which province is both among the nine partners of HCMC and a partner of a Korean city?"
    query = seed_assistant.embedder.embed_query(question)
    hits = seed_assistant.search(question, 5)
    sentences = seed_assistant.store.sentence_vectors(hit.passage.row_id for hit in hits)
    extract = extract_answer(question, query, hits, sentences)
    assert "Thanh Hoa" in extract.text  # a Vietnamese province besides HCMC, not "TP HCM … Daejeon"
    # the gazetteer does not know every city: a "which city" question without one is answered, not refused
    unknown = "Which city hosts the most research institutes in the country?"
    untyped = extract_answer(unknown, seed_assistant.embedder.embed_query(unknown), hits, sentences)
    assert untyped.text and untyped.citations


def _one_passage(embedder, text: str, lang: str):
    """``text`` as the only retrieved passage, its sentences pooled from its own pass as indexing does."""
    return _passages(embedder, [(text, lang)])


def _passages(embedder, texts: list[tuple[str, str]]):
    """Each (text, language) of ``texts`` as a retrieved passage of its own article, in that order."""
    from rag.chunking import split_sentences
    from rag.retrieval import Hit
    from rag.store import Passage, SentenceVectors

    hits, sentences = [], {}
    for row_id, (text, lang) in enumerate(texts, start=1):
        spans = split_sentences(text, lang)
        _, (vectors,) = embedder.embed_passages_and_spans([text], [spans])
        hits.append(Hit(row_id, 0.9, Passage(row_id, f"doc{row_id}", 0, "", None, lang, None, text, 0, len(text))))
        sentences[row_id] = SentenceVectors(spans, vectors, vectors)
    return hits, sentences


def _first_quote(embedder, text: str, lang: str, question: str) -> str:
    """The first line the extractive answer quotes from ``text`` as the only passage."""
    hits, sentences = _one_passage(embedder, text, lang)
    return extract_answer(question, embedder.embed_query(question), hits, sentences).text.splitlines()[0]


def test_a_name_few_sentences_share_counts_more_than_the_topic_every_sentence_names(embedder):
    # The topic (Anwar Ibrahim) is in most sentences; the one that answers names only the United States.
    # Counted plainly, two of the question's three names beat one, and a sentence about Anwar was quoted first.
    text = ("Anwar Ibrahim menerima banyak ucapan tahniah selepas mengangkat sumpah sebagai Perdana Menteri. "
            "Anwar Ibrahim berkata beliau akan mengukuhkan hubungan dengan negara jiran. "
            "Ucapan tahniah itu disampaikan oleh Duta Besar Amerika Syarikat ke Malaysia, Brian McFeeters. "
            "Anwar Ibrahim juga menerima panggilan telefon daripada Presiden Turkiye.")
    question = "Đại sứ nào đã chuyển lời chúc mừng của Mỹ tới ông Anwar Ibrahim?"
    assert _first_quote(embedder, text, "ms", question).startswith("- Ucapan tahniah itu disampaikan oleh Duta Besar")


def test_the_best_sentences_are_scored_again_encoded_on_their_own(embedder):
    # In the passage's context every sentence of it is "about the costume collection" for an English question;
    # encoded alone, the one about works on paper is told from its neighbours.
    text = ("Bộ sưu tập trang phục là toàn diện nhất ở Anh, có hơn 14.000 trang phục cộng với các phụ kiện, chủ yếu "
            "có niên đại từ 1600 đến nay. Phác thảo trang phục, sổ tay thiết kế và các tác phẩm khác trên giấy thường "
            "được lưu trữ bởi bộ phận “Chữ và Ảnh”. Bởi vì quần áo hàng ngày từ thời đại trước thường không còn tồn "
            "tại, bộ sưu tập chủ yếu có quần áo thời trang được làm cho những dịp đặc biệt. Một trong những món quà "
            "trang phục quan trọng đầu tiên xuất hiện vào năm 1913 khi V&A nhận được bộ sưu tập Talbot Hughes có "
            "1.442 trang phục và vật phẩm làm quà tặng từ Harrods sau khi trưng bày tại cửa hàng bách hóa gần đó.")
    question = "Which department houses the works on paper of the costume collection?"
    hits, sentences = _one_passage(embedder, text, "vi")
    query = embedder.embed_query(question)
    in_context = extract_answer(question, query, hits, sentences)
    rescored = extract_answer(question, query, hits, sentences, encode=embedder.embed_passages)
    assert "“Chữ và Ảnh”" not in in_context.text.splitlines()[0]
    assert "“Chữ và Ảnh”" in rescored.text.splitlines()[0]
    assert rescored.best_score == pytest.approx(in_context.best_score, abs=0.02)  # the relevance floor's scale


def test_words_most_candidate_sentences_share_do_not_outweigh_the_sentence_that_answers(embedder):
    # "có thể", "các", "chống" … are in most sentences of the passage; the sentence that answers ("by locking
    # the gates") shares few of the question's words, each of them rarer.  As a share of the question's own
    # words' rarity, the common ones still carried the Brownlee quote to the top.
    text = ("Một số hình thức bất tuân dân sự, chẳng hạn như tẩy chay bất hợp pháp, từ chối nộp thuế, né tránh dự "
            "thảo, tấn công từ chối dịch vụ phân tán và ngồi chiếm chỗ, khiến hệ thống hoạt động khó khăn hơn. Theo "
            "cách này, chúng có thể được coi là ép buộc. Brownlee lưu ý rằng \"mặc dù những người bất tuân dân sự bị "
            "hạn chế trong việc sử dụng sự ép buộc bởi mục đích có lương tâm của họ để tham gia vào cuộc đối thoại "
            "đạo đức, tuy nhiên, họ có thể thấy cần phải sử dụng sự ép buộc hạn chế để vấn đề của họ được đưa ra ra "
            "thảo luận.\" Tổ chức Plowshares đã tạm thời đóng cửa GCSB Waihopai bằng cách khóa các cổng và sử dụng "
            "liềm để làm xẹp một trong những mái vòm lớn bao phủ hai đĩa vệ tinh.")
    question = "Làm thế nào bạn có thể phản đối chống lại các công ty lớn theo cách không bạo lực?"
    assert "khóa các cổng" in _first_quote(embedder, text, "vi", question)


def test_an_indonesian_question_matches_a_malay_sentence_word_for_word(embedder):
    # Indonesian and Malay spell most words alike ("pameran", "forum"): an Indonesian question about the stalls
    # of the exhibition must reach the Malay sentence on the exhibition, not the one on the Japanese localities
    # the model scores closer.  Matched by names only, as for unrelated languages, it quoted the localities.
    text = ("Forum itu dihadiri oleh pemimpin 34 wilayah dan bandar Vietnam. "
            "Di pihak Jepun, terdapat pemimpin dan wakil dari 18 lokaliti, termasuk ratusan perniagaan dan pelabur "
            "yang berminat untuk mengetahui tentang peluang pelaburan di Vietnam. "
            "Di luar forum, kawasan pameran mempamerkan lebih daripada 40 gerai lokaliti kedua-dua negara, "
            "termasuk wilayah Thanh Hoa.")
    question = "Berapa banyak stan dalam pameran lokal Vietnam-Jepang di forum tersebut?"
    assert "40 gerai" in _first_quote(embedder, text, "ms", question)


def test_a_sentence_about_another_partner_country_is_not_quoted_beside_the_answer(embedder):
    # An article about the Korean partnership recalls Japan's upgrade of the same year's kind: within the margin
    # of the sentence that answers, it was quoted beside it and cited as backing a Korea answer.
    text = ("Beliau menekankan bahwa setelah kedua negara resmi meningkatkan hubungan menjadi Kemitraan Strategis "
            "Komprehensif pada tahun 2022, hubungan Vietnam-Korea semakin berkembang. "
            "Sebelumnya, Jepang juga meningkatkan hubungan Jepang-Vietnam menjadi Kemitraan Strategis Komprehensif "
            "pada tahun 2023. "
            "Kedua belah pihak sepakat untuk memperkuat kerja sama di bidang pendidikan dan pariwisata.")
    question = "Việt Nam và Hàn Quốc nâng cấp quan hệ lên Đối tác chiến lược toàn diện vào năm nào?"
    hits, sentences = _one_passage(embedder, text, "id")
    answer = extract_answer(question, embedder.embed_query(question), hits, sentences).text
    assert "2022" in answer.splitlines()[0]
    assert "Jepang" not in answer


def test_a_question_whose_places_no_sentence_names_still_quotes_the_best_sentence(embedder):
    # Whether to refuse is the relevance floor's call, not this rule's: every sentence here names another city.
    text = ("Wali Kota Seongnam, Shin Sang Jin, memimpin delegasi ke Thanh Hoa. "
            "Delegasi Seongnam terdiri dari hampir 20 anggota, termasuk pejabat dan pengusaha.")
    question = "Siapa Wali Kota Daejeon?"
    hits, sentences = _one_passage(embedder, text, "id")
    assert "Shin Sang Jin" in extract_answer(question, embedder.embed_query(question), hits, sentences).text


def test_a_question_in_two_parts_answered_by_two_articles_quotes_each_part(embedder):
    # No article names both Germany and Tokyo: the sentence about Tokyo leaves Germany out and names Hanoi,
    # and read as one question it was taken for a sentence about another place and never quoted.
    germany = ("Trong chuyến thăm Đức, Thủ tướng đã đến thăm nhà máy tua-bin khí của Siemens tại Berlin. "
               "Đoàn cũng làm việc với các doanh nghiệp Đức về năng lượng.")
    tokyo = ("Tại Tokyo, Tập đoàn TH của Việt Nam và tập đoàn ITEC của Nhật Bản đã ký biên bản ghi nhớ hợp tác, "
             "với sự chứng kiến của lãnh đạo thành phố Hà Nội. "
             "Hai bên sẽ hợp tác xây dựng bệnh viện.")
    question = ("Whose gas-turbine plant did the Prime Minister visit in Germany, and which Japanese group signed an "
                "MOU with TH Group in Tokyo?")
    hits, sentences = _passages(embedder, [(germany, "vi"), (tokyo, "vi")])
    answer = extract_answer(question, embedder.embed_query(question), hits, sentences).text
    assert "Siemens" in answer
    assert "ITEC" in answer
