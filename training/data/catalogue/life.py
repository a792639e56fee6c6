"""Circumstances: work, family, home, place and age."""

from __future__ import annotations

from training.data.catalogue.types import V, explicit, same, templated

OCCUPATION = templated(
    "occupation",
    "work working job career office shift colleague boss profession workplace employer company",
    third="works as {x}|is {x}|has a job as {x}",
    first="I'm {x}.|I work as {x}.|I've been working as {x} for years.|Job-wise, I'm {x}.",
    fills={
        "nurse": "a nurse|I'm a nurse on a busy hospital ward.",
        "software developer": "a software developer|I write code for a living.",
        "primary school teacher": "a primary school teacher|I teach seven-year-olds all day.",
        "electrician": "an electrician|I do wiring jobs, mostly houses.",
        "accountant": "an accountant|I spend my days in spreadsheets, I'm an accountant.",
        "chef": "a chef|I cook in a restaurant kitchen for a living.",
        "graphic designer": "a graphic designer|I design logos and posters for clients.",
        "pharmacist": "a pharmacist",
        "farmer": "a farmer|I run a small farm, mostly vegetables.",
        "lawyer": "a lawyer|I'm a lawyer, contracts mostly.",
        "truck driver": "a truck driver|I drive a truck, long hauls.",
        "librarian": "a librarian",
        "car mechanic": "a car mechanic|I fix cars at a garage in town.",
        "social worker": "a social worker",
    },
    extra={
        "retired": V(
            "is retired|no longer works, having retired",
            "I'm retired now.|Retired, so my days are my own.|I stopped working years ago.",
        ),
        "university student": V(
            "is a university student|studies at university",
            "I'm a student at uni.|Still at university, final year.|I'm studying at university.",
        ),
    },
)

FAMILY = explicit(
    "family",
    "family parent parents mom mum dad mother father sibling siblings brother sister relatives",
    {
        "only child": V(
            "is an only child|grew up without siblings",
            "I'm an only child.|No siblings, it was just me growing up.",
        ),
        "has a twin": V(
            "has a twin|is a twin",
            "I've got a twin.|My twin and I talk every day.",
        ),
        "big family": V(
            "comes from a big family|has five siblings",
            "I come from a huge family, five siblings.|There were six of us kids at home.",
        ),
        "cares for a parent": V(
            "looks after an elderly parent|helps care for their elderly mother",
            "I help look after my elderly mum most days.|My mother needs a lot of care these days.",
        ),
        "close to parents": V(
            "is close to their parents|calls their parents almost every day",
            "I'm really close with my parents.|I talk to my folks pretty much daily.",
        ),
        "raised by grandparents": V(
            "was raised by grandparents|grew up with their grandparents",
            "My grandparents raised me.|I grew up at my gran's place.",
        ),
    },
)

MARITAL = explicit(
    "marital",
    "married single partner wife husband spouse relationship dating wedding girlfriend boyfriend",
    {
        "single": V(
            "is single|isn't in a relationship", "I'm single.|Not seeing anyone at the moment."
        ),
        "married": V(
            "is married|has a spouse", "I'm married.|My spouse and I have been married ten years."
        ),
        "divorced": V(
            "is divorced|went through a divorce", "I'm divorced.|My divorce went through last year."
        ),
        "engaged": V(
            "is engaged|is planning a wedding", "I just got engaged.|We're planning our wedding."
        ),
        "widowed": V(
            "is widowed|lost their spouse",
            "I lost my spouse a few years ago.|My spouse passed away.",
        ),
        "long-term partner": V(
            "has a long-term partner|is in a long-term relationship",
            "I've been with my partner for years.|We're not married, but it's serious.",
        ),
    },
)

CHILDREN = explicit(
    "children",
    "kid kids child children son daughter baby toddler parenting school teenager family",
    {
        "no children": V(
            "has no children|doesn't have kids", "No kids for me.|I don't have children."
        ),
        "a toddler": V(
            "has a toddler|has a two-year-old",
            "I've got a toddler at home.|My little one just turned two.",
        ),
        "two school-age kids": V(
            "has two school-age kids|has two children in primary school",
            "I have two kids, both in school.|My two are seven and nine.",
        ),
        "a teenage daughter": V(
            "has a teenage daughter|is the parent of a teenager",
            "My daughter's fifteen.|I've got a teenage girl at home.",
        ),
        "grown-up children": V(
            "has grown-up children|has adult kids who have moved out",
            "My kids are all grown up.|Both my children have moved out now.",
        ),
        "expecting first child": V(
            "is expecting their first baby|will become a parent soon",
            "We're expecting our first baby.|The baby's due in spring, our first.",
        ),
    },
)

PETS = templated(
    "pets",
    "pet pets animal animals dog cat vet walk walks",
    third="has {x}|owns {x}|lives with {x}",
    first="I've got {x}.|I have {x} at home.",
    fills={
        "dog": "a dog|My dog needs two long walks a day.",
        "two cats": "two cats|My two cats run the house.",
        "parrot": "a parrot|My parrot talks more than I do.",
        "rabbit": "a rabbit",
        "tropical fish": "a tank of tropical fish",
        "rescue greyhound": "a rescue greyhound|My greyhound came from a rescue.",
    },
    extra={
        "no pets": V("has no pets|doesn't keep any animals", "No pets.|I don't have any animals."),
    },
)

LOCATION = templated(
    "location",
    "city live living area neighborhood neighbourhood weather local town where nearby country",
    third="lives in {x}|is based in {x}|calls {x} home",
    first="I live in {x}.|I'm in {x}.|I'm based in {x}, been here for years.",
    fills=same(
        "Seattle|Portland|Chicago|Austin|Denver|Toronto|Vancouver|Manchester|"
        "Dublin|Melbourne|Edinburgh|Lyon|Berlin|Barcelona|Auckland|Glasgow"
    ),
)

AGE = explicit(
    "age",
    "age old young birthday generation years retire retirement",
    {
        "early twenties": V(
            "is in their early twenties|is about 22 years old", "I'm 22.|I'm in my early twenties."
        ),
        "thirties": V("is in their thirties|is in their mid-thirties", "I'm 35.|I'm mid-thirties."),
        "forties": V("is in their forties|is in their mid-forties", "I'm 44.|I'm in my forties."),
        "fifties": V("is in their fifties|is in their late fifties", "I'm 57.|I'm in my fifties."),
        "over sixty-five": V(
            "is over sixty-five|is in their late sixties", "I'm 68.|I'm past sixty-five now."
        ),
    },
)

EDUCATION = explicit(
    "education",
    "school study studies studied degree university college education course learning learn",
    {
        "high school": V(
            "finished high school|has a high school diploma",
            "I finished high school and went to work.|High school was as far as I went.",
        ),
        "trade certificate": V(
            "has a trade certificate|trained through an apprenticeship",
            "I did an apprenticeship instead of college.|I learned my trade on the job.",
        ),
        "bachelor's degree": V(
            "has a bachelor's degree|graduated from college",
            "I've got a bachelor's degree.|I did a four-year degree.",
        ),
        "master's degree": V(
            "has a master's degree|holds a postgraduate degree",
            "I did a master's.|I have a master's degree.",
        ),
        "PhD": V("has a PhD|holds a doctorate", "I have a PhD.|I did a doctorate years ago."),
        "self-taught": V(
            "is self-taught|learned most things on their own",
            "I'm mostly self-taught.|I learned everything from books and videos.",
        ),
    },
)
