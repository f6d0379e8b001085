"""Names, dates of birth, postcodes and identifiers for synthetic children (docs/dfe-rules.md#identifiers).

Everything is drawn from a caller's `random.Random`, so a seed reproduces the same people. Names are
chosen to be encodable in Windows-1252 (layout mis-a) while still carrying accents, apostrophes and
hyphens, the things that break naive matching.
"""
from __future__ import annotations

import datetime as dt
import random

from stdnum.gb import upn as stdnum_upn

LA_NUMBER = "886"  # Kent
UPN_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ"

BOYS = (
    "Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Muhammad", "Oscar", "Charlie",
    "Jacob", "Thomas", "Henry", "William", "Joshua", "James", "Alexander", "Samuel", "Benjamin",
    "Daniel", "Matthew", "Frederick", "Harrison", "Christopher", "Theodore", "Edward", "Zachary",
    "Anthony", "Michael", "Robert", "Nicholas", "Sebastian", "Dominic", "Jonathan", "Maximilian",
    "Nathaniel", "Archie", "Alfie", "Logan", "Isaac", "Finley", "Reuben", "Toby", "Mason", "Kai",
    "Dylan", "Ethan", "Riley", "Jayden", "Tyler", "Aarav", "Rohan", "Ibrahim", "Yusuf", "Bilal",
    "Jakub", "Kacper", "Szymon", "Mateusz", "Andrei", "Luca", "Mihai", "Kwame", "Chidi", "Tobi",
    "Prakash", "Suman", "Bikash", "José", "Mehmet", "Kieran", "Connor", "Rhys", "Callum", "Ewan",
)
GIRLS = (
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Charlotte", "Elizabeth", "Jessica", "Katherine",
    "Rebecca", "Samantha", "Abigail", "Alexandra", "Matilda", "Penelope", "Eleanor", "Gabriella",
    "Victoria", "Francesca", "Georgina", "Poppy", "Evie", "Ella", "Daisy", "Phoebe", "Harriet",
    "Maisie", "Layla", "Ruby", "Scarlett", "Erin", "Niamh", "Aoife", "Zoë", "Chloé", "Renée",
    "Anaïs", "Zofia", "Maja", "Wiktoria", "Alicja", "Ioana", "Elena", "Amira", "Aisha", "Fatima",
    "Maryam", "Zainab", "Priya", "Anjali", "Sita", "Asha", "Chioma", "Adaeze", "Folake", "Esme",
    "Imogen", "Tilly", "Summer", "Skye", "Leah", "Megan", "Bethany", "Courtney", "Paige", "Jade",
)
SURNAMES = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
    "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price",
    "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey",
    "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall",
    "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Ahmed", "Wilkinson", "Foster", "Chapman",
    "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews",
    "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell",
    "Barker", "Fisher", "Stevens", "Jenkins", "Dixon", "Fletcher", "Kowalski", "Nowak",
    "Wisniewski", "Lewandowski", "Popescu", "Ionescu", "Gurung", "Rai", "Limbu",
    "Tamang", "Okafor", "Adeyemi", "Okonkwo", "Mensah", "Yilmaz", "Demir", "O'Brien", "O'Connor",
    "O'Neill", "McCarthy", "McDonald", "Smith-Jones", "Ashworth-Hale", "Fenwick", "Hardy",
    "Pemberton", "Godden", "Twyman", "Friend", "Sharp", "Stone", "Heath", "Dunn", "Pearce",
    "Rolfe", "Kemp", "Boorman", "Hogben", "Wraight", "Castle", "Marsh", "Goldsmith", "Mahmood",
    "Iqbal", "Chowdhury", "Rahman", "da Silva", "Ferreira", "Costa", "Nguyen", "Tran", "Müller",
)
NICKNAMES = {
    "Alexander": ("Alex", "Xander"), "Alexandra": ("Alex", "Lexi"), "William": ("Will", "Billy"),
    "Thomas": ("Tom", "Tommy"), "James": ("Jamie", "Jim"), "Joshua": ("Josh",),
    "Samuel": ("Sam", "Sammy"), "Benjamin": ("Ben", "Benji"), "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",), "Oliver": ("Ollie",), "Charlotte": ("Charlie", "Lottie"),
    "Elizabeth": ("Lizzie", "Beth", "Eliza"), "Isabella": ("Bella", "Izzy"), "Jessica": ("Jess",),
    "Katherine": ("Kate", "Katie", "Kat"), "Rebecca": ("Becky", "Becca"), "Samantha": ("Sam",),
    "Abigail": ("Abbie", "Abi"), "Olivia": ("Liv", "Livvy"), "Amelia": ("Millie", "Mia"),
    "Maximilian": ("Max",), "Frederick": ("Freddie", "Fred"), "Harrison": ("Harry",),
    "Nathaniel": ("Nate", "Nathan"), "Christopher": ("Chris",), "Jacob": ("Jake",),
    "Theodore": ("Theo", "Teddy"), "Edward": ("Ed", "Eddie", "Teddy"), "Florence": ("Flo",),
    "Matilda": ("Tilly", "Tilda"), "Penelope": ("Penny",), "Eleanor": ("Ellie", "Nell"),
    "Gabriella": ("Gabby", "Ella"), "Victoria": ("Tori", "Vicky"), "Zachary": ("Zach",),
    "Anthony": ("Tony", "Ant"), "Michael": ("Mike", "Mikey"), "Robert": ("Rob", "Bobby"),
    "Nicholas": ("Nick", "Nicky"), "Sebastian": ("Seb",), "Dominic": ("Dom",),
    "Jonathan": ("Jon", "Jonny"), "Francesca": ("Frankie", "Fran"), "Georgina": ("Georgie", "Gina"),
    "Mateusz": ("Mati",), "Jakub": ("Kuba",), "Muhammad": ("Mo",), "Harriet": ("Hattie",),
}
ADULT_FORENAMES = (
    "Sarah", "Claire", "Emma", "Rachel", "Laura", "Helen", "Nicola", "Joanne", "Fiona", "Amanda",
    "Paul", "Mark", "Andrew", "David", "Stephen", "Gareth", "Simon", "Neil", "Darren", "Kofi",
    "Agnieszka", "Priya", "Hannah", "Louise", "Kirsty", "Gemma", "Richard", "Ian", "Bola", "Ruth",
)
# Kent postcode areas and districts (CT Canterbury, ME Medway/Maidstone, TN Tonbridge, DA Dartford).
_POSTCODE_DISTRICTS = (
    [f"CT{n}" for n in range(1, 22)] + [f"ME{n}" for n in range(1, 21)]
    + [f"TN{n}" for n in range(1, 31)] + [f"DA{n}" for n in range(1, 14)] + ["BR8"]
)
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def forename(rng: random.Random, sex: str) -> str:
    return rng.choice(BOYS if sex == "M" else GIRLS)


def surname(rng: random.Random) -> str:
    return rng.choice(SURNAMES)


def nickname(rng: random.Random, name: str) -> str | None:
    """A shortened form of `name` (Alexander -> Alex), or None when the name has none."""
    options = NICKNAMES.get(name)
    return rng.choice(options) if options else None


def typo(rng: random.Random, name: str) -> str:
    """One keying error: a letter dropped, doubled, swapped with its neighbour or replaced."""
    if len(name) < 3:
        return name + name[-1]
    for _ in range(10):
        i = rng.randrange(1, len(name) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            out = name[:i] + name[i + 1:]
        elif kind == 1:
            out = name[:i] + name[i] + name[i:]
        elif kind == 2:
            out = name[:i] + name[i + 1] + name[i] + name[i + 2:]
        else:
            out = name[:i] + rng.choice("aeioulnrst") + name[i + 1:]
        if out != name:
            return out
    return name + "e"


def postcode(rng: random.Random) -> str:
    """A Kent-like (fictional) postcode such as 'CT1 2AB'."""
    return (f"{rng.choice(_POSTCODE_DISTRICTS)} {rng.randrange(10)}"
            f"{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}")


def dob_for_year_group(rng: random.Random, year_group: str, academic_year: int) -> dt.date:
    """A date of birth consistent with `year_group` ('R', '1'..'13') in the academic year starting
    1 September `academic_year`: Reception children turn 5 during that year."""
    offset = 0 if year_group == "R" else int(year_group)
    start = dt.date(academic_year - 5 - offset, 9, 1)
    return start + dt.timedelta(days=rng.randrange(365))


def reception_entry_year(dob: dt.date) -> int:
    """The calendar year the child started Reception (September after their fourth birthday)."""
    return dob.year + 5 if dob.month >= 9 else dob.year + 4


def upn_with_check(body: str) -> str:
    """Prefix a 12-character UPN body with its check letter (python-stdnum's algorithm)."""
    return stdnum_upn.calc_check_digit(body) + body


def is_valid_upn(value: str) -> bool:
    """Check letter and shape only (the LA number is ours, see docs/dfe-rules.md#identifiers)."""
    if len(value) != 13 or not value[1:12].isdigit() or not (value[12].isdigit() or value[12] in UPN_ALPHABET):
        return False
    return stdnum_upn.calc_check_digit(value[1:]) == value[0]


class IdentifierFactory:
    """Issues unique UPNs, temporary UPNs and NHS numbers (999 test range)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self._upns: set[str] = set()
        self._nhs: set[str] = set()
        self._serials: dict[tuple[str, str], int] = {}

    def upn(self, estab: str, year: int, la: str = LA_NUMBER) -> str:
        key = (la + estab, f"{year % 100:02d}")
        serial = self._serials.get(key, self.rng.randrange(1, 40))
        while True:
            serial += self.rng.randrange(1, 4)
            value = upn_with_check(f"{la}{estab}{year % 100:02d}{serial % 1000:03d}")
            if value not in self._upns:
                self._serials[key] = serial
                self._upns.add(value)
                return value

    def temporary_upn(self, estab: str, year: int) -> str:
        """A temporary UPN: the last character is a letter (DfE guidance for pupils awaiting one)."""
        while True:
            body = f"{LA_NUMBER}{estab}{year % 100:02d}{self.rng.randrange(100):02d}{self.rng.choice(UPN_ALPHABET)}"
            value = upn_with_check(body)
            if value not in self._upns:
                self._upns.add(value)
                return value

    def nhs_number(self) -> str:
        """A 10-digit NHS number in the 999 test range with a valid modulus-11 check digit."""
        while True:
            digits = "999" + "".join(str(self.rng.randrange(10)) for _ in range(6))
            total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1)))
            check = 11 - total % 11
            if check == 10:
                continue
            value = digits + str(0 if check == 11 else check)
            if value not in self._nhs:
                self._nhs.add(value)
                return value


def mistype_upn(rng: random.Random, value: str) -> str:
    """The same UPN with a wrong check letter (so it fails validation)."""
    wrong = [c for c in UPN_ALPHABET if c != value[0]]
    return rng.choice(wrong) + value[1:]


def swap_day_month(day: dt.date) -> dt.date | None:
    """The date with day and month swapped, or None when that is not a different valid date."""
    if day.day > 12 or day.day == day.month:
        return None
    return dt.date(day.year, day.day, day.month)
