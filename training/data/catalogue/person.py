"""The person: health, how they like to be spoken to, character, goals and values."""

from __future__ import annotations

from training.data.catalogue.types import V, explicit

ALLERGIES = explicit(
    "allergies",
    "allergy allergies allergic food eat eating meal dinner recipe ingredient ingredients "
    "restaurant milk nuts pollen spring",
    {
        "peanuts": V(
            "is allergic to peanuts|has a peanut allergy",
            "I'm allergic to peanuts.|Peanuts are a no-go for me, allergy.",
        ),
        "shellfish": V(
            "is allergic to shellfish|can't eat shellfish",
            "I'm allergic to shellfish.|Shrimp and crab make me ill.",
        ),
        "lactose intolerant": V(
            "is lactose intolerant|can't digest milk",
            "I'm lactose intolerant.|Dairy doesn't agree with me.",
        ),
        "cats": V(
            "is allergic to cats|sneezes around cats",
            "I'm allergic to cats.|Cats make me sneeze like crazy.",
        ),
        "hay fever": V(
            "has hay fever|suffers from pollen allergies",
            "I get bad hay fever.|Spring pollen wrecks me.",
        ),
        "coeliac": V(
            "has coeliac disease|must avoid gluten for medical reasons",
            "I'm coeliac.|Gluten makes me properly sick.",
        ),
    },
)

HEALTH = explicit(
    "health",
    "health pain injury injured doctor exercise workout running walk sleep body back knee "
    "sport hike hiking gym",
    {
        "bad knee": V(
            "has a bad knee|has an old knee injury",
            "My knee's been bad for years.|I hurt my knee and it never quite healed.",
        ),
        "back pain": V(
            "has chronic back pain|has a bad back",
            "I've got a bad back.|My lower back hurts most days.",
        ),
        "shoulder surgery": V(
            "is recovering from shoulder surgery|had shoulder surgery recently",
            "I'm recovering from shoulder surgery.|My shoulder was operated on last month.",
        ),
        "asthma": V("has asthma|is asthmatic", "I have asthma.|I carry an inhaler everywhere."),
        "migraines": V(
            "gets migraines|suffers from migraines",
            "I get migraines.|Bright screens give me migraines.",
        ),
        "diabetes": V(
            "has type 2 diabetes|manages diabetes",
            "I have type 2 diabetes.|I keep an eye on my blood sugar.",
        ),
    },
)

ANSWER_LENGTH = explicit(
    "answer_length",
    "explain explanation detail details answer answers summary long short quick brief",
    {
        "brief": V(
            "prefers brief answers|likes short replies",
            "Keep it short, please.|I like short answers.",
        ),
        "detailed": V(
            "likes detailed explanations|wants thorough answers",
            "I like the details.|Give me the full explanation.",
        ),
        "examples": V(
            "learns best from examples|likes concrete examples",
            "Examples help me most.|Show me an example and I'll get it.",
        ),
    },
)

TONE = explicit(
    "tone",
    "tone style talk talking chat formal casual joke jokes funny humour humor polite",
    {
        "formal": V(
            "prefers a formal tone|likes polite, formal language",
            "I prefer things a bit formal.|Polite and proper suits me.",
        ),
        "casual": V(
            "prefers a casual tone|likes relaxed, informal chat",
            "Keep it casual.|No need to be formal with me.",
        ),
        "humour": V(
            "enjoys humour in conversation|likes a bit of banter",
            "I like a bit of banter.|A joke now and then is welcome.",
        ),
        "blunt": V(
            "prefers blunt, direct answers|dislikes sugar-coating",
            "Just be straight with me.|Don't sugar-coat things.",
        ),
    },
)

PERSONALITY = explicit(
    "personality",
    "people social party parties friends friend personality crowd crowds stress nervous worry",
    {
        "introverted": V(
            "is introverted|recharges by being alone", "I'm an introvert.|Big crowds drain me."
        ),
        "outgoing": V(
            "is outgoing|loves meeting new people",
            "I love meeting new people.|I'm pretty outgoing.",
        ),
        "anxious": V(
            "tends to worry|gets anxious easily", "I'm a worrier.|I get anxious about small stuff."
        ),
        "optimistic": V(
            "is an optimist|usually sees the bright side",
            "I'm an optimist.|I usually look on the bright side.",
        ),
        "perfectionist": V(
            "is a perfectionist|sweats the small details",
            "I'm a bit of a perfectionist.|Details bug me until they're right.",
        ),
        "impatient": V("is impatient|hates waiting", "I'm impatient.|Waiting drives me nuts."),
        "curious": V(
            "is endlessly curious|loves learning how things work",
            "I'm curious about everything.|I love knowing how things work.",
        ),
    },
)

GOALS = explicit(
    "goals",
    "goal goals plan plans future dream dreams hope hoping year want motivation",
    {
        "buy a house": V(
            "is saving to buy a house|wants to buy their first home",
            "I'm saving for a house.|I want to buy my first place.",
        ),
        "run a marathon": V(
            "is training for a marathon|wants to run a marathon",
            "I'm training for a marathon.|I want to run a marathon this year.",
        ),
        "learn to cook": V(
            "wants to learn to cook|is learning to cook",
            "I'm trying to learn to cook.|I want to get better in the kitchen.",
        ),
        "change careers": V(
            "wants to change careers|is planning a career switch",
            "I'm thinking of switching careers.|I want out of my field.",
        ),
        "get promoted": V(
            "is aiming for a promotion|wants to get promoted",
            "I'm going for a promotion.|I want that senior role.",
        ),
        "get fit": V(
            "wants to get fit|is trying to lose weight",
            "I'm trying to get fit.|I want to drop a few kilos.",
        ),
        "learn the piano": V(
            "is learning the piano|wants to play the piano",
            "I'm learning piano.|I've started piano lessons.",
        ),
        "write a novel": V(
            "is writing a novel|wants to finish a novel",
            "I'm writing a novel.|I've got half a novel written.",
        ),
    },
)

VALUES = explicit(
    "values",
    "value values care important matter matters believe community environment balance family",
    {
        "environment": V(
            "cares about the environment|tries to live sustainably",
            "I try to live green.|The environment matters a lot to me.",
        ),
        "family time": V(
            "values family time|puts family first",
            "Family comes first for me.|Time with family matters most.",
        ),
        "volunteering": V(
            "volunteers in the community|does volunteer work",
            "I volunteer at a food bank.|I do volunteer work on weekends.",
        ),
        "independence": V(
            "values independence|likes doing things their own way",
            "I like doing things my own way.|Independence matters to me.",
        ),
        "work-life balance": V(
            "values work-life balance|keeps work out of evenings",
            "I guard my evenings from work.|Work-life balance is a must for me.",
        ),
        "honesty": V(
            "values honesty|can't stand being lied to",
            "Honesty matters most to me.|I can't stand being lied to.",
        ),
    },
)
