"""Tastes: food, drink, pastimes, sport, music, books, travel and screens."""

from __future__ import annotations

from training.data.catalogue.types import V, explicit, same, templated

_FOOD = "food eat eating meal meals dinner lunch breakfast cook cooking recipe recipes restaurant "

DIET = explicit(
    "diet",
    _FOOD + "meat snack dish kitchen hungry diet",
    {
        "vegan": V("is vegan|eats no animal products", "I'm vegan.|No animal products for me."),
        "vegetarian": V("is vegetarian|doesn't eat meat", "I'm vegetarian.|I don't eat meat."),
        "pescatarian": V(
            "is pescatarian|eats fish but no meat",
            "I eat fish but no meat.|Pescatarian, so fish is fine.",
        ),
        "gluten-free": V("eats gluten-free|avoids gluten", "I avoid gluten.|I eat gluten-free."),
        "low-carb": V(
            "follows a low-carb diet|keeps carbs low",
            "I'm doing low-carb.|I try to keep carbs down.",
        ),
        "eats everything": V(
            "eats pretty much anything|is not a picky eater",
            "I'll eat anything.|I'm not picky about food.",
        ),
        "intermittent fasting": V(
            "does intermittent fasting|skips breakfast on purpose",
            "I do intermittent fasting.|I don't eat before noon.",
        ),
    },
)

CUISINE = templated(
    "cuisine",
    _FOOD + "cuisine takeaway takeout dish dishes flavour flavor",
    third="loves {x} food|prefers {x} cuisine|could eat {x} food every day",
    first="{X} food is my favourite.|I could eat {x} food every day.|Nothing beats {x} food.",
    fills=same("Italian|Thai|Mexican|Japanese|Indian|Ethiopian|Greek|Korean|Lebanese"),
    extra={
        "barbecue": V(
            "loves barbecue|is a big fan of smoked meat",
            "Give me barbecue any day.|I love a good smoked brisket.",
        )
    },
)

DRINK = explicit(
    "drink",
    "drink drinks coffee tea beer wine cafe bar pub cup morning",
    {
        "coffee": V(
            "drinks a lot of coffee|loves strong coffee",
            "I live on coffee.|Three espressos a day, easily.",
        ),
        "tea": V("prefers tea|drinks tea all day", "I'm a tea person.|I drink tea all day long."),
        "no alcohol": V(
            "doesn't drink alcohol|is teetotal", "I don't drink alcohol.|I'm teetotal."
        ),
        "craft beer": V(
            "likes craft beer|enjoys trying local beers",
            "I like a good craft beer.|I'm always trying new local beers.",
        ),
        "wine": V(
            "enjoys wine|likes a glass of red wine",
            "I like a glass of red with dinner.|I'm into wine.",
        ),
    },
)

HOBBIES = templated(
    "hobbies",
    "hobby hobbies free time weekend weekends fun relax relaxing spare leisure evening",
    third="enjoys {x}|spends free time {x}|is into {x}",
    first="I'm really into {x}.|I spend most weekends {x}.|{X} is my thing.",
    fills=same(
        "gardening|painting watercolours|woodworking|knitting|taking photos|baking bread|"
        "playing board games|playing video games|birdwatching|making pottery|doing crosswords|"
        "fixing up old bikes"
    ),
    max_values=2,
)

SPORT = explicit(
    "sport",
    "sport sports exercise workout fitness gym training active game team match outdoors",
    {
        "running": V(
            "goes running|is a keen runner",
            "I run most mornings.|I'm a runner, a few times a week.",
        ),
        "swimming": V("swims regularly|goes swimming", "I swim laps twice a week.|I'm a swimmer."),
        "cycling": V(
            "enjoys road cycling|rides a road bike on weekends",
            "I do a lot of road cycling.|I ride my road bike every weekend.",
        ),
        "yoga": V("practises yoga|does yoga", "I do yoga.|Yoga's my thing, most evenings."),
        "rock climbing": V(
            "goes rock climbing|climbs at a bouldering gym",
            "I go climbing.|I boulder at the gym a lot.",
        ),
        "tennis": V("plays tennis|is in a tennis club", "I play tennis.|I'm in a tennis club."),
        "football": V(
            "plays football|plays in a five-a-side league",
            "I play five-a-side football.|I play football with mates on Sundays.",
        ),
        "basketball": V(
            "plays basketball|shoots hoops with friends",
            "I play basketball.|I shoot hoops with friends.",
        ),
        "no sport": V(
            "doesn't do any sport|isn't into exercise",
            "I'm not a sporty person.|Exercise isn't really my thing.",
        ),
    },
)

MUSIC = templated(
    "music",
    "music song songs listen listening band bands concert playlist album gig",
    third="listens to {x}|is a big {x} fan",
    first="I mostly listen to {x}.|I'm a huge {x} fan.|{X} is always on at my place.",
    fills=same("jazz|heavy metal|classical music|country|hip-hop|indie rock|K-pop|folk"),
)

READING = templated(
    "reading",
    "book books read reading novel novels author library story stories",
    third="reads a lot of {x}|enjoys reading {x}",
    first="I read a lot of {x}.|I'm always in the middle of some {x}.",
    fills=same("science fiction|crime novels|history books|fantasy|poetry|biographies|comics"),
    extra={
        "rarely reads": V(
            "doesn't read much|rarely reads books",
            "I don't read much.|Books aren't really my thing.",
        )
    },
)

TRAVEL = explicit(
    "travel",
    "travel trip trips holiday holidays vacation abroad flight flights destination visit tourist",
    {
        "backpacking": V(
            "loves backpacking|travels on a shoestring with a backpack",
            "I love backpacking.|I travel cheap with just a backpack.",
        ),
        "beach holidays": V(
            "prefers beach holidays|likes lazy holidays by the sea",
            "Give me a beach and I'm happy.|I like lazy holidays by the sea.",
        ),
        "road trips": V(
            "loves road trips|likes to travel by car",
            "Road trips are the best.|I'd rather drive than fly.",
        ),
        "city breaks": V(
            "enjoys city breaks|likes short trips to big cities",
            "I like quick city breaks.|A long weekend in a new city is perfect.",
        ),
        "camping": V(
            "goes camping|likes sleeping in a tent",
            "I go camping whenever I can.|I'd take a tent over a hotel.",
        ),
        "rarely travels": V(
            "rarely travels|hasn't been abroad", "I hardly ever travel.|I've never been abroad."
        ),
    },
)

SCREEN = templated(
    "screen",
    "film films movie movies show shows series tv television watch watching streaming episode",
    third="watches a lot of {x}|enjoys {x}",
    first="I watch a lot of {x}.|{X} are my go-to in the evening.",
    fills=same("documentaries|horror films|romantic comedies|crime dramas|cooking shows"),
    extra={"anime": V("watches anime|is an anime fan", "I watch a ton of anime.|I'm into anime.")},
)
