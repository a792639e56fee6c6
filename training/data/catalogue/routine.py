"""Daily life: home, commute, schedule, languages, money and gadgets."""

from __future__ import annotations

from training.data.catalogue.types import V, explicit, same, templated

LIVING = explicit(
    "living",
    "home house apartment flat live living roommate roommates move moving rent neighbours space",
    {
        "alone": V("lives alone|lives on their own", "I live alone.|It's just me in my place."),
        "with roommates": V(
            "lives with roommates|shares a flat with friends",
            "I share a flat with two roommates.|I've got roommates, it's chaos.",
        ),
        "with partner": V(
            "lives with their partner|shares a home with their partner",
            "I live with my partner.|My partner and I share a place.",
        ),
        "with parents": V(
            "lives with their parents|still lives at their parents' home",
            "I still live with my parents.|I'm back at my parents' place for now.",
        ),
        "house with garden": V(
            "lives in a house with a garden|has a house with a big back garden",
            "I've got a house with a decent garden.|Our house has a big back garden.",
        ),
        "small apartment": V(
            "lives in a small apartment|has a tiny city apartment",
            "My apartment is tiny.|I live in a small flat in the centre.",
        ),
    },
)

COMMUTE = explicit(
    "commute",
    "commute commuting drive driving car train bus bike cycle travel traffic work office",
    {
        "cycles": V(
            "cycles to work|commutes by bike",
            "I bike to work every day.|I cycle in, rain or shine.",
        ),
        "train": V(
            "commutes by train|takes the train to work",
            "I take the train in.|My commute's an hour on the train.",
        ),
        "drives": V(
            "drives a long way to work|has a long drive to work",
            "I drive forty minutes each way.|My commute is a long drive.",
        ),
        "works from home": V(
            "works from home|works remotely", "I work from home.|I'm fully remote, no office."
        ),
        "walks": V(
            "walks to work|lives within walking distance of work",
            "I walk to work.|Work's a ten-minute walk away.",
        ),
        "bus": V(
            "takes the bus to work|commutes by bus",
            "I take the bus to work.|I ride the bus every morning.",
        ),
    },
)

WORK_SCHEDULE = explicit(
    "schedule",
    "schedule hours shift shifts time week weekend weekends morning mornings night busy free",
    {
        "night shifts": V(
            "works night shifts|works nights", "I work nights.|Night shifts, mostly."
        ),
        "nine to five": V(
            "works regular office hours|works nine to five",
            "I work a normal nine to five.|My hours are pretty regular.",
        ),
        "weekends": V(
            "works most weekends|works on weekends",
            "I work most weekends.|Weekends are my busiest days.",
        ),
        "irregular hours": V(
            "has irregular working hours|works unpredictable hours",
            "My hours are all over the place.|My schedule changes every week.",
        ),
        "part-time": V(
            "works part-time|has a part-time job", "I only work part-time.|I do three days a week."
        ),
        "early mornings": V(
            "starts work very early|begins work before dawn",
            "I start work at five in the morning.|My shift starts before sunrise.",
        ),
    },
)

LANGUAGES = templated(
    "languages",
    "language languages speak speaking english translate translation accent fluent learn",
    third="speaks {x}|is fluent in {x}",
    first="I speak {x}.|I'm fluent in {x}.|{X} is my second language.",
    fills=same("Spanish|French|German|Mandarin|Portuguese|Arabic|Hindi"),
    extra={
        "learning Japanese": V(
            "is learning Japanese|is studying Japanese",
            "I'm learning Japanese.|I do Japanese lessons twice a week.",
        ),
        "only English": V(
            "speaks only English|doesn't speak other languages",
            "I only speak English.|Languages were never my thing, just English.",
        ),
    },
)

BUDGET = explicit(
    "budget",
    "budget money price prices cost costs cheap expensive afford spend spending save saving pay",
    {
        "tight budget": V(
            "is on a tight budget|has little money to spare",
            "Money's tight right now.|I'm on a pretty tight budget.",
        ),
        "frugal": V("is frugal|hates wasting money", "I'm pretty frugal.|I hate wasting money."),
        "pays for quality": V(
            "doesn't mind paying for quality|spends more on things that last",
            "I'll pay extra for quality.|I'd rather buy once and buy well.",
        ),
        "saving up": V(
            "is saving up money|puts money aside every month",
            "I'm saving every penny right now.|I put money aside each month.",
        ),
    },
)

TECH = explicit(
    "tech",
    "phone computer app apps tech technology gadget laptop online internet software setup device",
    {
        "tech-savvy": V(
            "is very tech-savvy|is good with technology",
            "I'm pretty good with tech.|Gadgets are easy for me.",
        ),
        "struggles with technology": V(
            "struggles with technology|finds computers confusing",
            "I'm hopeless with technology.|Computers confuse me.",
        ),
        "early adopter": V(
            "buys new gadgets early|is an early adopter of technology",
            "I always get the newest gadgets first.|I preorder every new phone.",
        ),
        "avoids social media": V(
            "avoids social media|has no social media accounts",
            "I'm not on social media.|I deleted all my social accounts.",
        ),
        "builds own computers": V(
            "builds their own computers|assembles their own PCs",
            "I build my own PCs.|I put my computer together myself.",
        ),
    },
)

CHRONOTYPE = explicit(
    "chronotype",
    "morning mornings night evening sleep wake early late bed tired routine",
    {
        "early riser": V(
            "is an early riser|gets up at dawn", "I'm up at five most days.|I'm a morning person."
        ),
        "night owl": V(
            "is a night owl|stays up late", "I'm a night owl.|I'm rarely in bed before two."
        ),
    },
)
