"""The fault detectors, the streaming guard, tidying and the outline's check, on the faults the
documents of the default model had (the clean-documents issue's examples) and on prose that
must pass."""

from __future__ import annotations

import pytest

from lwlocal.write.faults import (
    Memory,
    echoes,
    is_boundary,
    is_garbled,
    is_talk,
    outline_problems,
    section_faults,
    sentences,
)
from lwlocal.write.guard import SectionGuard, tidy
from lwlocal.write.outline import Outline, Section
from lwlocal.write.outline_check import bounded, problems, repair
from lwlocal.write.review import review, summary_line

TALK = [
    # a coffee guide read at the end of this round (`write "Write a guide to brewing good
    # coffee at home, from beans to cup." --words 900 --sections 5`)
    "A great first step in the plan of a brewing guide to coffee, I love it.",
    "The most important part of the whole article is, you know, a really good example.",
    "So, the guide is going to have all kinds of ways that will help people.",
    "The plan: 1. To keep your vegetable garden, how to eat what is edible.",
    "The plan: First of all, you need to have a little more than you think you do.",
    "This is the main point that you need.",
    # the 5,000-word bread guide of this round: its list items talked about themselves
    "This topic talks about how this all happened 100 years ago.",
    "This topic will be discussed later.",
    "So I'm going to talk a little bit more about what makes things work.",
    "I will just tell you how to make it now.",
    "Coming soon: Recipe for the Modern World of Bread and Science, and a Guide to Baked Bread.",
    "This has been very interesting, but now I'm going to share it with everyone else too.",
    "This topic has been very interesting but I'm afraid it's only going to end here.",
    "What I will do is help you create an article based on your favorite bread.",
    "This is what I'm asking for: You have to make it even more perfect with my instructions.",
    "I hope you can understand how important and why I am making this process possible.",
    "What do the text have in common?",
    "Provide only 1 answer for each of these questions:",
    "2. What type of writing is this?",
    '"Overview of Vegetable Gardens: This section will cover the basics of soil.',
    "The next is to provide some tips on watering.",
    "which I've already written before.",
    "please let me know what exactly this was.",
    "I will ask for section 1 of this text: gardens.",
    "I'm excited to help you with your garden.",
    "I have already completed the section you requested.",
    "In this article, we look at tomatoes.",
    "I hope this helps!",
    "Sure, here is the guide you asked for.",
    "In the next section, we will look at pests.",
    'When I asked for the section "The Clockmaking: A Tale of Disruption," I was intrigued.',
    "In this particular piece, I made some bold changes that will benefit readers.",
    "I hope this piece helps you see the world in a different way.",
    "In the final part, I tried to add a bit more depth.",
    "This is my plan so far:",
    "So I'm going to give you 2 more points: 1, the first point can be anything.",
    "This is a guide to keeping your bike in good condition and looking sharp.",
    "Here they are:",
    "So now I'm telling you what the most important part is.",
    "The second point is what it means.",
    "This is the third part.",
    "Writing instructions: You need to do this checklist every day.",
    "Here's a rewritten version",
    "Here's a continuation of section one",
    "I'll keep sending you more writing.",
    "I'm not going to repeat anything but instead give you one of my paragraphs.",
    "Don't bother buying anything, but in about 218 sentences you can start.",
    "I have to tell you that it's going to take a long time.",
    "You're right.",
    "I'm glad you brought this up.",
    "本节将介绍面包的历史。",
    "希望这对你有帮助。",
    "以下是这篇文章的第二部分。",
    "This story is about a bakery with A.E. Currowfe...",
    "This story ends with a bakery with An A,",
    "I'm ready to help.",  # the benchmark's bicycle guide opened with these three
    "What section would you like me to begin with?",
    "I'll start writing it for you now, and we can work together.",
    "I'm ready to assist you.",  # the benchmark's tea guide, the model lost in a Chinese request
    "How can I help you today?",
    "Yes, I will make it shorter.",  # make demo, this round
    "Here's the final two sections:",
    "You are an excellent writer.",  # a clockmaker story of this round echoing the request
    "Please add a section to your story about an incredible clockmaker.",
    "But what could it mean? (section)",
    "This is the perfect answer to your questions: 2019.",
    "But here's the answer I've been giving you so far.",
    "What's your writing project you need assistance with?",
    # make demo, this round: a section that was the plan listed, heading by heading
    "1. Growing Your Own Vegetables: (A Guide to Starting a Vegetable Garden)",
    "How to Water and Plant,: (How to Water and Plant)",
    "Healthy Soil and Gardening Essentials: (Healthy Soil and Garden Essentials) (A Guide to "
    "Gardening)",
    "3. How to Start a Garden from Seeds, (Steps to Start Your Own Vegetable)",
    "You've already told us a lot about starting your own, and the other parts are exciting.",
    "I'm going to help you in a little bit because it's also important.",
    "You're absolutely right, I think.",
    # LongBench-Write's instructions through llama-server, this round
    "Here is your written piece.",
    "Here is your written piece again.",
    "This is what I have prepared so far.",
    "Please go ahead and share your part if possible.",
    "This is only one of several parts of a two-part response.",
    "The text should contain an introduction that provides information about TSNE.",
    "Here’s how it can be organized:",
    "As I'm an excellent writing assistant, I'll ensure that your learning journey is fun.",
    "Please share any questions or areas where you need support with Swift development.",
    "I'm glad you're excited about Swift programming!",
    "I'm glad I could help you on your path to Swift programming!",
    "I’m glad you’re excited, and I’ll be here for you.",  # curly apostrophes
    "The report will cover a wide range of topics related to refugees.",
    "Step 1: The report will start with the topic itself.",
    "Here is a sample of my answer:",
    "Your response should contain exactly 3 paragraphs.",
    "At the end of your response, please explicitly add a postscript starting with P.S.",
    "P.S. We have more details about the report.",
    "Drama, Report: The report covers Sudanese Refugee Problems in South Africa.",
    "The story begins with a simple sentence.",
    "Responses, 2 paragraphs, and 3 sentences are all the same.",  # outline titles
    "How to Write a Report on Refugee Problems: Step-by-Step Guide",
    "Your previous response needs improvement",  # outline titles through llama-server
    "An earlier answer",
    "Question: How Artificial Intelligence is shaping the world today",
    "The sections are designed with clear and specific",
    "Here is the outline for writing your touching short story.",
    "Write it in a single paragraph without a title or quotation marks.",
    "I will ask for one more section from your list.",
    "Start at once with this part of the instruction.",
    "I will ask you another section of the writing task.",
    "You cannot write this one sentence without changing your mind.",
    "I'm here to guide you every step of the way.",
    "Here is the key points that will be",
    # lwlocal's clock report and Chinese story through llama-server
    "1. I am very glad that you are here and that your writing is inspiring me to write a "
    "300-word text on the history of mechanical clocks.",
    "4. In this case, I must say that you're absolutely right!",
    "This is a great example of how to break your writing into individual sections.",
    "If there are any specific areas where you'd like me to provide further assistance, "
    "please tell us.",
    "写一篇30字的苏三韩书",
    "The writing is here.",
    "The subject of the writing can be anything you want.",
    "And I'm here for you every single step towards your goal.",
    "6. How to use this knowledge for all you want, this is what I will tell my readers about "
    "on this blog post.",  # make demo, the last stop
    "In this blog post you will find ten tips.",
    "It shows how hard work goes into making something from nothing, as I mentioned before, "
    "is just what I am trying to say about myself right now.",  # an essay of this stop's
    "As I said earlier, soil comes first.",
    # the 10,000-word job of this stop (section 6)
    "The topic of baking that I was told to write about today is British baking.",
    "So now I'd like to talk about the British baking industry.",
    # make demo, this stop
    "So that's the first thing I've done today - I'm not going to make any mistakes on this "
    "blog or anywhere else.",
    # a bicycle repair guide of this stop's
    "Your plan is well-crafted, and I'll make sure to deliver it with care.",
    "I'll respond with text when asked about how to repair bicycles properly.",
    "I'll provide this plan as a PDF document and may use the layout to create it.",
    "The planning process for my 2019 article about the best ways to repair a bicycle.",
    "So, I'm going to write a 2017 article about it because of how easy it is.",
    "But if I have any other details, I'll be happy to put them on my website.",
]
SUBJECT = [
    "Tomatoes need six hours of sun a day.",
    "The guide had a lantern, and the plan of the old city on a scrap of paper.",
    "The whole village turned out for the harvest.",
    "The plan was simple: leave at dawn and reach the pass by noon.",
    "The document will have to be signed by both parties.",
    "Read the entire report before you sign it, and the whole text of the law.",
    "The plan for a new post office was drawn up in 1902.",
    "The main point of the treaty was trade, and this is the point where the river bends.",
    "The guide will have ropes for everyone, and the guide is going to have to wait.",
    "The history of bread begins in Egypt, where wild yeast raised the first loaves.",
    'She said, "I will help you," and smiled.',
    "A cross-section of the loaf shows an open crumb.",
    "Water the beds early in the morning, before the heat.",
    "面包起源于古埃及。",
    "I planted the beans in May, and they came up in a week.",
    "He cut this piece of oak for the clock's case.",
    "The section of the river below the mill floods each spring.",
    "I tried to open the case, but the hinge had rusted shut.",
    "The first step is to take the wheel off the frame.",
    "My plan was to reach the lighthouse before the storm.",
    "The last part of the climb is the steepest.",
    "Follow the instructions on the seed packet.",
    "Her grandmother told the story of the flood every spring.",
    "I was told to wait by the gate until the baker came.",
    "She would like to talk to the miller before noon.",
    "Preparation time: (about 20 minutes)",
    "The Tagus River (Rio Tejo)",
    "Tomatoes: (Solanum lycopersicum)",
    "Belem Tower: (Torre de Belem)",
    "The neighbours will help you carry the boxes.",
    "Here is a piece of advice: water in the morning.",
    "The immune response of the body takes days.",
    "I'm glad the rain came before the harvest.",
    "The response of the town was to build a wall.",
    "The text of the treaty was kept in Rome.",
    "The report of the commission was published in 1921.",
    "Step 1: Take the wheel off the frame.",
    "The answer lies in the soil.",
    "The 300-year-old clock still keeps time.",
    "他写了一本三百页的书。",
    "The readers of the local paper voted for the new bridge.",
    "Her blog about roses had ten thousand readers.",
    "As I said goodbye, the ferry left the harbour.",
    "I know what you are trying to say, she told him.",
    "When you write a letter to the mill, keep a copy.",
    "Before you write an essay, make a rough outline.",  # prose about writing (a review's)
    "He started this blog in 2004 to track his roses.",
    '"I am with you every step of the way," her father said.',
    "Your plan is simple: dig in March, sow in April.",
    "Make your plan before you buy any seed.",
    "I'm going to plant beans this year.",
    "She answered the letter the next day.",
    "Historians have argued about this topic for centuries.",
    "This topic has been debated by bakers for a century.",
    "I talk to my grandmother about bread every Sunday.",
    "I will share my grandmother's recipe for rye bread.",
    "Bakers share this with everyone in the village.",
    "The new bakery is coming soon to our town.",
    # a review of this round's patterns: dialogue and prose they caught at first
    '"I\'m going to talk to the captain," she said.',
    "We will talk to the baker tomorrow about the rye.",
    "When we bake extra loaves, we share them with everyone on our street.",
    "I share it with you because you are my son.",
    "This has been an interesting year for wheat farmers.",
    "This topic is very controversial among historians.",
    "This topic will be debated for years to come.",
    "Coming soon after the harvest, the festival fills the square.",
    "A good teacher will help you write the essay yourself.",
    '"I hope you like the bread," she said.',
    "I hope you find your own rhythm on the strings.",
    "This is what we are asking of the council: plant more trees.",
    "What do these trees have in common?",
    "The council could not answer the residents' questions about the new trees.",
    "Answers to these questions shaped the city's plan.",
]


@pytest.mark.parametrize("sentence", TALK)
def test_talk_about_the_writing_is_caught(sentence):
    assert is_talk(sentence)


@pytest.mark.parametrize("sentence", SUBJECT)
def test_prose_about_the_subject_passes(sentence):
    assert not is_talk(sentence)


@pytest.mark.parametrize("line,boundary", [
    ("Section 2: Planting", True), ("In section 2: \"Preliminary Planting and Care\"", True),
    ("## Soil", True), ("**Watering**", True), ("第二节 种植", True),
    ("Planting and Care", True),  # another section's title on a line of its own
    ("Planting and care go together in May.", False), ("Soil is alive.", False),
    ("***", True), ("---", True), ("* * *", True), ("- Water daily.", False),
    # make demo, this stop: the next section's title run into its text
    ("1. Planting and Care: Here's how to start.", True),
    ("Planting and care matter: water the beds early in May.", False),
    # a story's section through llama-server: a list of made-up headings with dates
    ("SECTION Title 2: 2019-03-16 23:17:56.359 (Blogger)", True),
    ("TITLE 4: 2020-03-36 10:29:34.855 (Remake of)", True), ("Title deeds were kept.", False),
])
def test_boundaries(line, boundary):
    assert is_boundary(line, ["Planting and Care"]) == boundary


def test_a_section_with_every_fault_of_the_demo():
    """The demo's section 1, as the issue quotes it: quoted, opening with its title, talking
    about itself, a sentence twice, and the next section's start inside it."""
    text = ('"Overview of Vegetable Gardens: This section will cover soil. Soil is the base of '
            'a good garden and needs care. Soil is the base of a good garden and needs care.\n'
            'In section 2: "Preliminary Planting and Care"')
    kinds = [f.kind for f in section_faults(text, 1, ["Overview of Vegetable Gardens",
                                                     "Preliminary Planting and Care"])]
    assert kinds == ["quote", "title", "talk", "repeat", "boundary"]


def test_a_third_sentence_opening_as_two_before_is_a_loop():
    """The server run's garden guide: eight sentences opening "This is what makes"."""
    text = ("This is what makes gardening so rewarding for every family. "
            "Soil needs compost in the spring and the autumn. "
            "This is what makes gardening such an adventure for beginners. "
            "This is what makes it so easy for people who love plants.")
    assert [(f.kind, f.text[:25]) for f in section_faults(text, 1, ["Gardens"])] == [
        ("repeat", "This is what makes it so ")]
    # short sentences and two alike openings pass; so does a Chinese opening of four characters
    assert not section_faults("Water the beds. Water the beds early. Water the pots at noon, "
                              "before the heat of the day. Water the pots at dusk when it is "
                              "cool.", 1, ["Watering"])
    assert not section_faults("在这个过程中面包会膨胀起来。在这个过程中酵母会产生气体。"
                              "在这个过程中温度非常重要。", 1, ["面包"])
    guard = SectionGuard(2, ["Gardens", "Tools"], Memory([
        "This is what makes gardening so rewarding for every family."]))
    for piece in ["This is what makes a spade the first tool to buy. ",
                  "This is what makes a fork so useful in heavy clay soil. "]:
        guard.add(piece)
    assert guard.fault is not None and guard.fault.kind == "repeat"
    assert guard.fault.text.startswith("This is what makes a fork")


def test_list_numbers_counted_one_after_another_are_a_loop():
    """lwlocal's tree essay, locally: "5. 6. 7. … 38." lines took a section's whole token
    budget (tidied away after, leaving 76 of 667 words); caught at the second in a row."""
    guard = SectionGuard(1, ["Trees"], Memory())
    guard.add("Trees cool the streets in summer and slow the rain in winter.\n3. Shade.\n")
    assert guard.fault is None
    for piece in ["5.\n", "6.\n", "7.\n"]:
        guard.add(piece)
    assert guard.fault is not None and (guard.fault.kind, guard.fault.text) == ("repeat", "6.")


def test_a_section_that_opens_with_another_sections_title_is_cut():
    """make demo, this stop: section 1 opened "Starting a Vegetable Garden: Here's How to Start
    your Own." (section 2's title)."""
    titles = ["Growing Your Own Vegetables", "Starting a Vegetable Garden"]
    guard = SectionGuard(1, titles, Memory())
    guard.add("Starting a Vegetable Garden: Here's How to Start your Own. ")
    assert guard.fault is not None and guard.fault.kind == "title"
    assert [f.kind for f in section_faults(
        "Starting a Vegetable Garden: Here's How. Soil comes first.", 1, titles)] == ["title"]
    guard = SectionGuard(1, titles, Memory())  # the words of a title inside prose pass
    guard.add("Starting a vegetable garden takes a spade and a spring morning. ")
    assert guard.fault is None


def test_a_section_that_opens_with_its_title_after_a_list_number_is_cut_from_its_start():
    """make demo, the last stop: section 1 began "1. Growing Your Own Vegetables: This is a
    wonderful skill …" (its own title, as a list's first item), which the review counted and
    the guard let through: the number came as a sentence of its own first."""
    titles = ["Growing Your Own Vegetables", "Starting a Vegetable Garden"]
    guard = SectionGuard(1, titles, Memory())
    for piece in ["1.", " Growing", " Your", " Own", " Vegetables", ":", " This", " is", " a",
                  " wonderful", " skill.", " Seeds"]:
        if guard.add(piece):
            break
    assert guard.fault is not None and (guard.fault.kind, guard.fault.start) == ("title", 0)
    guard = SectionGuard(1, titles, Memory())  # a list that begins with its own words passes
    guard.add("1. Choose a sunny plot with good soil. 2. Dig it over in spring. ")
    assert guard.fault is None


def test_a_title_run_into_the_first_sentence_is_tidied_away():
    """make demo, the last stop: once a heading line of its own (<<…>>) and a number were
    tidied, section 1 opened "1. Growing Your Own Vegetables: This is a wonderful skill …"."""
    text = ("<<Farming Your Own Food>>\n1. Growing Your Own Vegetables: This is a wonderful "
            "skill.\n2. Choose a sunny plot.")
    body, repairs = tidy(text, "Growing Your Own Vegetables")
    assert body == "This is a wonderful skill.\n2. Choose a sunny plot."
    assert [r.text for r in repairs] == ["<<Farming Your Own Food>>",
                                         "1. Growing Your Own Vegetables:"]
    prose = "Growing your own vegetables takes a spade: and patience."  # its words in prose
    assert tidy(prose, "Growing Your Own Vegetables")[0] == prose
    assert tidy("Growing Your Own Vegetables:", "Growing Your Own Vegetables")[1] == []


def test_a_list_item_that_is_another_sections_heading_is_a_boundary():
    """make demo, this stop: section 1 ended with "1. Starting a Vegetable Garden: Here's How
    to Start Your Own Garden in 8 Easy Steps." (section 2's title after a list number)."""
    titles = ["Growing Your Own Vegetables", "Starting a Vegetable Garden"]
    text = ("Seeds want warm soil and steady water.\n"
            "1. Starting a Vegetable Garden: Here's How to Start Your Own Garden in 8 Steps.")
    assert [f.kind for f in section_faults(text, 1, titles)] == ["boundary"]
    assert not section_faults("Seeds want warm soil.\n1. Water them early in the day.", 1,
                              titles)


def test_a_title_numbered_in_brackets_is_the_title_again():
    from lwlocal.write.faults import opens_with_title
    assert opens_with_title("(1) Why Cities Should Plant Trees.\nTrees cool streets.",
                            "Why Cities Should Plant Trees")


def test_repeats_across_sections_and_loops_inside_a_sentence():
    memory = Memory(["Sourdough needs a starter fed with flour and water every day of the "
                     "week, or it sours."])
    assert memory.repeats("Sourdough needs a starter fed with flour and water every day of "
                          "the week, or it sours.")
    # a run of twelve words said before, inside a longer sentence
    assert memory.repeats("Bakers know that sourdough needs a starter fed with flour and water "
                          "every day of the week in summer.")
    assert not memory.repeats("Sourdough needs patience.")  # too short to count
    assert not memory.repeats("Rye bread keeps for a week in a cool place.")


def test_a_loop_that_changes_a_word_or_two_is_a_repeat():
    """A story of the default model's (the clean-documents work's own prompt) that looped on
    one line, a word or two changed each time; prose that shares words passes."""
    memory = Memory(['He smiled at the light again and said: "A" for a light."'])
    assert memory.repeats('He smiled and said: "A" for a light again!"')
    memory = Memory(["When a thing caught their eye - it was not just something you can do, "
                     "but how much more could you be than what you are."])
    assert memory.repeats("When a thing caught your eye - it was not just something that you "
                          "can do, but how much more could you be than that.")
    memory = Memory(["The starter needs flour and water every day."])
    assert not memory.repeats("The dough needs flour and water and a pinch of salt.")
    assert not memory.repeats("Bakers feed the starter every day with flour and water.")


def test_initials_and_titles_do_not_end_a_sentence():
    """"A.C. Currybe" is one sentence, not three short ones too short to count as repeats."""
    text = "A Baked Ending has to Do with A.C. Currybe... Then Dr. Who came. 他走了。好！"
    assert [s.strip() for _, s in sentences(text)] == [
        "A Baked Ending has to Do with A.C. Currybe...", "Then Dr. Who came.", "他走了。",
        "好！"]
    guard = SectionGuard(1, ["Bread", "Ovens"], Memory())
    assert guard.add("He met Dr.") is None and guard.add(" Who at noon.") is None
    assert guard.add(" He met Dr. Who at noon.").kind == "repeat"  # one sentence, said twice


@pytest.mark.parametrize("start", ["A loaf costs 3.50 in the market and more in town. ",
                                   "The Basics of a 300-word piece.: A brief overview. ",
                                   'He said "Stop."Then he left the bakery. '])
def test_a_full_stop_inside_a_sentence_does_not_stop_the_guard(start):
    """A stop followed by a letter or digit ("3.50", "piece.:" then more) once left the
    guard waiting for that sentence's end for the rest of the section: the tea guide of the
    benchmark kept nine sentences of talk after "piece.:"."""
    guard = SectionGuard(1, ["Bread", "Ovens"], Memory())
    for word in (start + "In this section I will ask for the details.").split(" "):
        if guard.add(word + " "):
            break
    assert guard.fault is not None and guard.fault.kind == "talk"
    assert guard.fault.text.startswith("In this section")


def stream(guard: SectionGuard, text: str) -> int:
    """Feed ``text`` a word at a time; how many words went in before the guard found a fault."""
    pieces = text.split(" ")
    for n, word in enumerate(pieces, 1):
        if guard.add(word if n == 1 else " " + word):
            return n
    return len(pieces)


def test_the_guard_finds_a_fault_as_soon_as_it_can_be_told():
    titles = ["Soil", "Planting"]
    guard = SectionGuard(1, titles, Memory())
    assert stream(guard, '"Soil is alive and full of worms."') == 1  # the opening quote
    assert guard.fault.kind == "quote" and guard.fault.start == 0

    guard = SectionGuard(1, titles, Memory())
    words = stream(guard, "Soil is alive. In this section we talk about worms and roots.")
    assert guard.fault.kind == "talk" and words == 6  # at "section", before the sentence ends
    assert guard.text[:guard.fault.start] == "Soil is alive."  # the space goes with the cut

    guard = SectionGuard(1, titles, Memory())
    stream(guard, "Soil is alive.\n\nSection 2: Planting seeds in spring.")
    assert guard.fault.kind == "boundary"
    assert guard.text[:guard.fault.start] == "Soil is alive."

    said = "Compost feeds the soil with the rich brown matter that worms turn into food."
    guard = SectionGuard(2, titles, Memory([said]))
    stream(guard, "Seeds go in after the frost. Compost feeds the soil with the rich brown "
                  "matter that worms turn into food for plants.")
    assert guard.fault.kind == "repeat" and guard.fault.start == len("Seeds go in after "
                                                                    "the frost.")


def test_the_guard_lets_a_one_pass_document_have_headings():
    guard = SectionGuard(1, [""], Memory(), boundaries=False)
    assert not stream(guard, "Bread is old.\n\n## Ancient grains\n\nEmmer came first.") or (
        guard.fault is None)


def test_tidy_removes_wrapping_quotes_and_the_title_line():
    text, repairs = tidy('"Soil\nSoil is alive and full of worms."', "Soil")
    assert text == "Soil is alive and full of worms."
    assert [r.kind for r in repairs] == ["quote", "title"]
    assert tidy("Soil is alive.", "Soil") == ("Soil is alive.", [])
    text, _ = tidy("The Art of Writing,\nWriting is a skill.", "The Art of Writing")
    assert text == "Writing is a skill."


def test_tidy_drops_lines_of_list_numbers_alone():
    """The benchmark's bicycle guide: "1. 1." "2. 2" "3. 4" on lines of their own."""
    text, repairs = tidy("Here is what to do:\n\n1. 1.\n2. 2\n\n1. Oil the chain weekly.\n3. 4\n"
                         "\nDry the frame after rain.", "Winter care")
    assert text == "Here is what to do:\n\n1. Oil the chain weekly.\n\nDry the frame after rain."
    assert [(r.kind, r.text) for r in repairs] == [("numbers", "1. 1. / 2. 2 / 3. 4")]


def test_tidy_numbers_a_list_from_one_where_it_counts_on_from_an_earlier_section():
    """make demo, this stop: section 2 opened "2." and "3." after section 1's "1." and "2."."""
    text, repairs = tidy("2. The importance of soil: roots need air.\n3. Be careful: water "
                         "early.", "Soil")
    assert text == "1. The importance of soil: roots need air.\n2. Be careful: water early."
    assert [(r.kind, r.text) for r in repairs] == [("numbers", "2. 3. numbered from 1")]
    for kept in ("1. Dig.\n2. Sow.", "In 1990 the river rose.\n2. b\n4. c", "Sow in May."):
        assert tidy(kept, "Soil") == (kept, [])


def test_a_title_made_from_a_main_point_ends_on_a_word_of_its_own():
    """A lighthouse history of this round: titles cut from main points at eight words ended
    "... the origin and" and "... is a story that", and one on a comma; `make demo`'s "... to
    have your"."""
    outline = Outline("p", 600, [
        Section("History", "The lighthouses of the coast.", 200),
        Section("History", "A historical account that recounts the origin and growth of the "
                           "lights.", 200),
        Section("History", "Lighthouse-keeping was once viewed as a lonely trade, then a "
                           "calling.", 200),
        Section("History", "It is the best way to have your favorite food.", 200)])  # make demo
    mended, _ = repair(outline)
    assert [s.title for s in mended.sections][1:] == [
        "A historical account that recounts the origin",
        "Lighthouse-keeping was once viewed as a lonely trade",
        "It is the best way to have"]


def test_tidy_drops_a_heading_of_its_own_wrapped_on_the_first_line():
    """A trees essay of this round began its first section with such a line."""
    text, repairs = tidy("<<The Importance of Cities: Planting More Trees>>\n\nIn recent years "
                         "cities have planted more trees.", "Introduction and Purpose")
    assert text == "In recent years cities have planted more trees."
    assert [(r.kind, r.text) for r in repairs] == [
        ("title", "<<The Importance of Cities: Planting More Trees>>")]
    for kept in ("[Note] Water the beds early.\nThen weed them.",
                 "<<Quiet,>> she said. <<The tree is old.>>\nShe left."):
        assert tidy(kept, "Watering") == (kept, [])


def test_a_line_that_opens_with_the_sections_own_title_as_a_heading_is_a_boundary():
    """An essay read at the end of this round listed its plan after its text, each item its one
    section's title run into a line ("2) How Public Libraries Matter: A History of Change: In a
    world …"); the section starting over so ends there. Its title in a line of prose does not."""
    title = "How Public Libraries Matter: A History of Change"
    text = ("Libraries lend books to everyone.\n\n2) How Public Libraries Matter: A History of "
            "Change: In a world where people have access to computers they can learn anything.")
    faults = section_faults(text, 1, [title])
    assert [(f.kind, f.start) for f in faults] == [("boundary", text.index("2) How"))]
    opening = section_faults(title + ": libraries lend books.\n\nHow public libraries matter "
                             "is a question of history.", 1, [title])
    assert [f.kind for f in opening] == ["title"]  # its opening's fault, not a boundary
    guard = SectionGuard(1, [title], Memory())
    guard.add(text)
    assert guard.fault is not None and guard.fault.kind == "boundary"


def test_a_title_that_is_the_answers_json_is_made_anew():
    """A lighthouse story read at the end of this round was written under "## ', 'content'",
    its outline's one section after a merge; a title that opens with a string's closing quote
    is the answer's JSON, and the lone section is titled from the instruction."""
    prompt = "Write a story about a lighthouse keeper who finds a message in a bottle."
    mended, changes = repair(Outline(prompt, 700, [Section(
        "', 'content' :", "The writing is on the topic of finding a message in a bottle.", 700)]))
    assert mended.sections[0].title == "A lighthouse keeper who finds a message in a bottle"
    assert "from the instruction" in changes[-1]
    for kept in ("The 'Yes', 'No' and 'Maybe' of Bread", "'Salt': a history"):
        assert repair(Outline("p", 400, [Section(kept, "E.", 400)]))[0].sections[0].title == kept


def test_list_numbers_before_a_title_are_dropped():
    mended, changes = repair(Outline("p", 400, [Section("1. 3. Key Information Points",
                                                        "Tyres, chain and brakes.", 400)]))
    assert mended.sections[0].title == "Key Information Points"
    assert changes == ["section 1: '1. 3. Key Information Points' titled 'Key Information "
                       "Points' (its list numbers or trailing marks dropped)"]
    mended, changes = repair(Outline("p", 400, [Section("1984: The Year", "Orwell.", 400)]))
    assert mended.sections[0].title == "1984: The Year" and not changes
    # make demo, this round: "## Watering and Planting," under its heading
    mended, changes = repair(Outline("p", 400, [Section("Watering and Planting,", "Tips.", 400)]))
    assert mended.sections[0].title == "Watering and Planting" and len(changes) == 1
    mended, _ = repair(Outline("p", 400, [Section("Learn it with a clear approach,.", "T.", 400)]))
    assert mended.sections[0].title == "Learn it with a clear approach"
    # make demo, this stop: a title that ends as a sentence does
    mended, _ = repair(Outline("p", 400, [Section("To keep your garden, eat what you can.", "E.",
                                                  400)]))
    assert mended.sections[0].title == "To keep your garden, eat what you can"
    # a lighthouse essay of this stop's: a title that runs past its first sentence
    mended, changes = repair(Outline("p", 400, [Section(
        "How they can improve your life, by helping others. The importance of them for a", "E.",
        400)]))
    assert mended.sections[0].title == "How they can improve your life, by helping others"
    assert "cut at the end of its first sentence" in changes[0]
    # a coffee guide's, cut short by the schema's 80 characters
    mended, changes = repair(Outline("p", 400, [Section(
        "Coffee Making Tips & How-to's for Coffee-Making - Guide to Boiler, Brewing, and,", "E.",
        400)]))
    assert mended.sections[0].title == ("Coffee Making Tips & How-to's for Coffee-Making - Guide "
                                        "to Boiler, Brewing")
    assert changes[-1].endswith("(the word it was cut short on dropped)")
    for kept in ("Life in the U.S.", "Tools, glue, etc.", "Wait...", "Acme Inc.",
                 "Roads in the U.S. Today", "Dr. Smith and the Lamp", "Getting By",
                 "Things to Look For", "Salt and Pepper", "Vitamin A", "Q and A"):
        assert repair(Outline("p", 400, [Section(kept, "E.", 400)]))[0].sections[0].title == kept
    # a title numbered in brackets (LongBench-Write's t-SNE introduction through llama-server)
    mended, _ = repair(Outline("p", 400, [Section("Introduction to T-SNE (2)", "What.", 400)]))
    assert mended.sections[0].title == "Introduction to T-SNE"
    mended, _ = repair(Outline("p", 400, [Section("The Tagus River (Rio Tejo)", "W.", 400)]))
    assert mended.sections[0].title == "The Tagus River (Rio Tejo)"


BREAD = ["Baking Science: The Art of Sourdough Making and Baker's Yeast",
         "Selling Bread in Modern Times, A History of Bread Baking"]


def test_outline_problems_repeated_titles_and_placeholders():
    titles = ["Ancient Grains", *BREAD, *BREAD, "1. Step 1: [Section 1]"]
    found = outline_problems(titles, ["Emmer and einkorn.", "Yeast.", "Selling.", "Yeast.",
                                      "Selling.", "A point."])
    assert [(p.index, p.kind, p.like) for p in found] == [
        (4, "title", 2), (5, "title", 3), (6, "talk", None)]
    # a story's outline through llama-server
    placeholders = outline_problems(["Section Title 1", "SECTION Title 3", "Title 5", "Titles"],
                                    ["A keeper.", "A storm.", "A rescue.", "Deeds."])
    assert [(p.index, p.kind) for p in placeholders] == [(1, "talk"), (2, "talk"), (3, "talk")]
    # a garden guide's outline of this round: "3" and "4" for titles (or none but marks)
    bare = outline_problems(["Writing the Beds", "3", "4.", "—", "1984", "第三"],
                            ["Beds.", "Seeds.", "Water.", "Pests.", "Orwell.", "三."])
    assert [(p.index, p.kind) for p in bare] == [(2, "talk"), (3, "talk"), (4, "talk")]
    # make demo, this stop: the title the mend made from an echo of the instruction
    echo = outline_problems(["Keeping the soil", "Every time you write a guide it's important",
                             "How to write an essay"], ["Soil.", "Guides.", "Essays."])
    assert [(p.index, p.kind) for p in echo] == [(2, "talk"), (3, "talk")]


def test_repair_retitles_from_the_main_point_or_merges():
    outline = Outline("p", 800, [
        Section("Planting and Care for Vegetables", "Choose seeds and plant them in spring.",
                200),
        Section("Overview", "Gardens need sun, water and soil.", 200),
        Section("Planting and Care for Vegetables", "Water, weed and feed the plants in "
                "summer.", 200),
        Section("1. Step 1: [Section 1]", "[Section 1]", 200)])
    mended, changes = repair(outline)
    assert [s.title for s in mended.sections] == [
        "Planting and Care for Vegetables", "Overview",
        "Water, weed and feed the plants in summer"]
    assert mended.planned_words == 800 and len(changes) == 3
    assert "list numbers or trailing marks dropped" in changes[0]
    assert "merged into section 3" in changes[2]
    assert not outline_problems([s.title for s in mended.sections],
                                [s.main_point for s in mended.sections])


@pytest.mark.parametrize("prompt, title", [
    ("写一篇800字的短篇故事，讲述一个小镇邮递员最后一天上班的经历。",
     "讲述一个小镇邮递员最后一天上班的经历"),
    ("Write a 1000-word essay on why cities should plant more trees along their streets.",
     "Why cities should plant more trees along their streets"),
])
def test_a_lone_section_with_no_title_of_its_own_is_titled_from_the_instruction(prompt, title):
    """lwlocal's Chinese story, locally: one section titled ",", its main point about the
    writing ("The subject of the writing can be anything you want to write for this
    response")."""
    outline = Outline(prompt, 800, [Section(",", "The writing is here. The subject of the "
                                            "writing can be anything you want to write for "
                                            "this response.", 800)])
    mended, changes = repair(outline)
    assert [(s.title, s.main_point) for s in mended.sections] == [(title, prompt)]
    assert "from the instruction" in changes[-1]


def test_a_merged_section_does_not_say_its_main_point_twice():
    """The 10,000-word bread guide's outline: "Pricing of bread" four times in one point."""
    outline = Outline("p", 800, [Section("Pricing of Bread", "Pricing of bread", 400),
                                 Section("Pricing of Bread", "Pricing of bread", 200),
                                 Section("Pricing of Bread", "Flour costs.", 200)])
    mended, _ = repair(outline)
    assert [(s.title, s.main_point, s.words) for s in mended.sections] == [
        ("Pricing of Bread", "Pricing of bread", 600), ("Flour costs", "Flour costs.", 200)]


@pytest.mark.parametrize("budgets", [[226, 90, 42, 92], [5000, 100, 100],
                                     [10, 2000, 300, 300, 300, 300], [1200] * 9 + [200]])
def test_budgets_are_bounded_and_keep_their_total(budgets):
    out = bounded(budgets)
    assert sum(out) == sum(budgets)
    average = sum(budgets) / len(budgets)
    assert min(out) >= min(200, average / 2) - 1
    if average <= 1000:
        assert max(out) <= max(1000, 2 * average) + 1


BICYCLE = ("This special bicycle was made of wood and iron in a shed. This special bicycle is "
           "going to make many people happy for years. This special bicycle has made so many "
           "changes to the town and its roads. This special bicycle gave people a lot of things "
           "to do on Sundays.")


def test_a_section_opening_its_sentences_alike_again_and_again_is_a_loop():
    """A bicycle guide of this stop's: "This special bicycle …" eight times, each sentence's
    fourth word another (so the four-word openings never repeat). The fourth in a section is
    a loop, for the review and for the guard as it streams; in another section it is not."""
    found = section_faults(BICYCLE, 1, ["Wheels"])
    assert [(f.kind, f.text[:25]) for f in found] == [("repeat", "This special bicycle gave")]
    guard = SectionGuard(1, ["Wheels"], Memory())
    stream(guard, BICYCLE)
    assert guard.fault is not None and guard.fault.text.startswith("This special bicycle gave")
    later = section_faults(BICYCLE.split(". ", 3)[-1], 2, ["Wheels", "Roads"],
                           Memory([BICYCLE.rsplit(". ", 1)[0]]))
    assert later == []
    short = "It is a wheel. It is a bell. It is a seat. It is a frame."
    assert section_faults(short, 1, ["Parts"]) == []  # sentences too short to count


def test_lines_that_took_the_matchers_exponential_time_are_read_at_once():
    """The 5,000-word bread guide of this stop's hung in its fifth section on a line of
    hyphen-joined words: the heading-list pattern could split it into words in exponentially
    many ways (3 s for 120 characters, doubling every 8; this line is 340). A line of list
    numbers alone could split a run of digits so too (1.5 s at 24). Both read it one way now."""
    line = ("1. Baking-A-Simple-Guide-This-Is-The-Key-To_Baking-A-Perfect-Loafs-It's-What-We-"
            "Should-Do-Here-Are-Your-Tips-So-long-I'm-Just-Giving-You-A-Guide-to-How-To-Make-"
            "This-All-Around-the-World-Of_Bread, This topic is going to be a bit more detailed.")
    assert is_talk(line) and is_garbled(line)  # "This topic is going to …", glued words
    assert tidy("1" * 40 + "x\n\nKnead the dough.", "Dough") == (
        "1" * 40 + "x\n\nKnead the dough.", [])
    assert tidy("Knead it.\n\n5. 6. 7.\n\nBake it.", "Dough")[0] == "Knead it.\n\nBake it."


@pytest.mark.parametrize("text,garbled", [
    # the 5,000-word bread guide of this round, sections 4 to 6
    ("Sour-Doodle Recipe: A Guide-A-Key-In-The-World-Of-This-Breads-It-Is-How-You-Can-Make.",
     True),
    ("UsingOneItemToMakeTheMostUniqueBreadThisIsNotWhatYou'dWanted, this is what you give.", True),
    ("Bread-BakedWithAll-The-Right-Types-Of-Ingredients-This topic will be shared.", True),
    ("Sour-Doodle-Recipe:-A-Guide-A-Key-In-The-World-Of-This-Breads-It-Is-How.", True),
    ("Bread-Baked-With-All-The-Right-Ingredients-In-2-Hours-Or-Less-And-More.", True),
    ("(Bread-Baked-With-All-The-Right-Ingredients-In-What).", True),
    # words people do glue, and what is no prose
    ("A one-and-a-half-year-old state-of-the-art oven from McDonald's.", False),
    ("Call `getElementsByClassName_for_every_single_node_here` once.", False),
    ("See https://example.com/how-to-bake-a-good-loaf-of-bread-at-home-today.", False),
    ("|---|---|---|---|---|---|---|---|", False),
    ("Jean-Baptiste ate a mother-in-law's pain-au-chocolat.", False),
    ("It is what-you-see-is-what-you-get, said the twenty-two-and-a-half-year-old baker.", False),
    ("SimpleBeanFactoryAwareAspectInstanceFactory and make_the_bread_rise_in_a_warm()", False),
    ("Order from my-grandmothers-best-bread-recipe-for-every-day.com today.", False),
])
def test_words_glued_into_one_are_garbled(text, garbled):
    assert is_garbled(text) == garbled


def test_the_review_counts_garbled_sentences_and_wants_the_section_again():
    text = ("Knead the dough for ten minutes until it is smooth. "
            "Bread-Baked-With-All-The-Right-Types-Of-Ingredients-Here is the way. "
            "Let it rise until it doubles.")
    assert [f.kind for f in section_faults(text, 1, ["Dough"])] == ["garbled"]
    reviewed = review(["Dough"], [text]).as_dict()
    assert reviewed["garbled"] == 1 and reviewed["sections"][0]["garbled"] == 1
    assert reviewed["rewrite"] == [1]  # one sentence in three
    assert "1 garbled" in summary_line(reviewed)


def test_an_outline_title_that_says_the_instruction_back_or_names_json_is_mended():
    """A lighthouse story's outline of this round: its first title was the instruction, its
    second "How to write a JSON-formatted response"; a bicycle history's and a guitar guide's
    titles had the answer's JSON run into them."""
    prompt = "Write a story about a lighthouse keeper who finds a message in a bottle."
    outline = Outline(prompt, 1500, [
        Section("Write a story about a lighthouse keeper who finds a message in a bottle",
                "The keeper finds a bottle on the rocks after a storm.", 500),
        Section("How to write a JSON-formatted response",
                "The message inside tells of a ship lost years ago.", 500),
        Section("Bicycle's past, present & future', 'besides its own unique story' }, {",
                "The keeper sails out to find the wreck.", 300),
        Section("The Guitar and Music}.", "Songs the keeper plays at night.", 200)])
    assert [(p.index, p.kind) for p in problems(outline)] == [(1, "talk"), (2, "talk")]
    mended, changes = repair(outline)
    assert [s.title for s in mended.sections] == [
        "The keeper finds a bottle on the rocks", "The message inside tells of a ship lost",
        "Bicycle's past, present & future", "The Guitar and Music"]
    assert "(the JSON run into it cut)" in changes[0] and not problems(mended)
    # a title with the instruction's words, or about JSON where JSON is the subject, stands
    assert not echoes("Keeping a Lighthouse Through the Winter", prompt)
    assert not echoes("Reading JSON Files", "Write a guide to JSON for beginners.")
    assert not echoes("Parsing JSON Responses", "Write a guide to web APIs.")
    assert not echoes("Write Every Day", "Write a guide to building a writing habit.")
    assert not echoes("Write a Story", prompt)  # three of its words
    assert not echoes("Write the Cover Letter", "Write a guide to applying for jobs: write the "
                      "CV, the cover letter and the interview.")
    for quoted in ("The 'Yes', 'No' and 'Maybe' of Bread", "Bakers', Millers' and Farmers' Roles",
                   'Why "Knead": The Basics'):
        kept, _ = repair(Outline("p", 400, [Section(quoted, "Bread.", 400)]))
        assert kept.sections[0].title == quoted
