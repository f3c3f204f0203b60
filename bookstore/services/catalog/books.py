"""The catalogue the catalog service seeds into its database: real, well-known books.

What: ``BOOKS`` holds the shop's stock list, ``book_id`` 1..N in order. ``year`` is the year
of first publication; ``isbn`` is the ISBN-13 of an edition in print (so a second edition's
ISBN may sit beside the first edition's year); prices are integer cents, like every amount
of money in the bookstore.

Why real books: search results and order totals mean something to a learner when the data
does. Several authors appear more than once (Tolkien, Austen, Orwell, Dickens, Steinbeck,
Stephen King, Fowler) and titles share words ("Patterns", "King", "and"), so a search
returns more than one hit and paging has something to page through.

An ISBN-13 ends in a check digit: weight the first twelve digits 1, 3, 1, 3, ..., sum them,
and the check digit brings the sum up to a multiple of 10. It catches every single-digit
typo and most swaps of neighbouring digits. ``isbn13_is_valid`` checks it; a unit test runs
it over every book here.

When not to: a real catalogue is data, loaded by an import job from a publisher feed
(ONIX), not Python source. A tuple in the package is right for a course, where every
learner must start from the same shelf.
"""

from __future__ import annotations

from bookstore.domain.models import Book


def isbn13_check_digit(first_twelve: str) -> int:
    """The check digit that completes twelve ISBN digits."""
    total = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(first_twelve))
    return (10 - total % 10) % 10


def isbn13_is_valid(isbn: str) -> bool:
    """True for 13 ASCII digits whose last one is the right check digit."""
    if len(isbn) != 13 or not (isbn.isascii() and isbn.isdigit()):
        return False
    return isbn13_check_digit(isbn[:12]) == int(isbn[12])


# (title, author, isbn, price_cents, year); book_id is the position, from 1.
_SHELF: tuple[tuple[str, str, str, int, int], ...] = (
    ("The Hobbit", "J. R. R. Tolkien", "9780547928227", 1499, 1937),
    ("The Fellowship of the Ring", "J. R. R. Tolkien", "9780547928210", 1599, 1954),
    ("The Two Towers", "J. R. R. Tolkien", "9780547928203", 1599, 1954),
    ("The Return of the King", "J. R. R. Tolkien", "9780547928197", 1599, 1955),
    ("The Silmarillion", "J. R. R. Tolkien", "9780544338012", 1799, 1977),
    ("Pride and Prejudice", "Jane Austen", "9780141439518", 899, 1813),
    ("Sense and Sensibility", "Jane Austen", "9780141439662", 899, 1811),
    ("Emma", "Jane Austen", "9780141439587", 999, 1815),
    ("Persuasion", "Jane Austen", "9780141439686", 899, 1817),
    ("Northanger Abbey", "Jane Austen", "9780141439792", 899, 1817),
    ("Mansfield Park", "Jane Austen", "9780141439808", 999, 1814),
    ("Nineteen Eighty-Four", "George Orwell", "9780451524935", 999, 1949),
    ("Animal Farm", "George Orwell", "9780451526342", 899, 1945),
    ("Homage to Catalonia", "George Orwell", "9780156421171", 1599, 1938),
    ("Down and Out in Paris and London", "George Orwell", "9780156262248", 1499, 1933),
    ("Great Expectations", "Charles Dickens", "9780141439563", 1099, 1861),
    ("A Tale of Two Cities", "Charles Dickens", "9780141439600", 999, 1859),
    ("Oliver Twist", "Charles Dickens", "9780141439747", 999, 1838),
    ("David Copperfield", "Charles Dickens", "9780140439441", 1299, 1850),
    ("Bleak House", "Charles Dickens", "9780141439723", 1399, 1853),
    ("Jane Eyre", "Charlotte Brontë", "9780141441146", 999, 1847),
    ("Wuthering Heights", "Emily Brontë", "9780141439556", 899, 1847),
    ("Frankenstein", "Mary Shelley", "9780141439471", 899, 1818),
    ("Dracula", "Bram Stoker", "9780141439846", 1099, 1897),
    ("Moby-Dick", "Herman Melville", "9780142437247", 1299, 1851),
    ("The Great Gatsby", "F. Scott Fitzgerald", "9780743273565", 1299, 1925),
    ("To Kill a Mockingbird", "Harper Lee", "9780061120084", 1499, 1960),
    ("The Catcher in the Rye", "J. D. Salinger", "9780316769488", 999, 1951),
    ("Brave New World", "Aldous Huxley", "9780060850524", 1599, 1932),
    ("Fahrenheit 451", "Ray Bradbury", "9781451673319", 1099, 1953),
    ("Lord of the Flies", "William Golding", "9780399501487", 1100, 1954),
    ("The Old Man and the Sea", "Ernest Hemingway", "9780684801223", 1300, 1952),
    ("The Sun Also Rises", "Ernest Hemingway", "9780743297332", 1700, 1926),
    ("Of Mice and Men", "John Steinbeck", "9780140177398", 1000, 1937),
    ("The Grapes of Wrath", "John Steinbeck", "9780143039433", 1900, 1939),
    ("East of Eden", "John Steinbeck", "9780142004234", 2000, 1952),
    ("Slaughterhouse-Five", "Kurt Vonnegut", "9780385333849", 1800, 1969),
    ("Catch-22", "Joseph Heller", "9781451626650", 1899, 1961),
    ("Beloved", "Toni Morrison", "9781400033416", 1700, 1987),
    ("One Hundred Years of Solitude", "Gabriel García Márquez", "9780060883287", 1799, 1967),
    ("Crime and Punishment", "Fyodor Dostoevsky", "9780143058144", 1800, 1866),
    ("The Brothers Karamazov", "Fyodor Dostoevsky", "9780374528379", 2000, 1880),
    ("Anna Karenina", "Leo Tolstoy", "9780143035008", 2000, 1878),
    ("War and Peace", "Leo Tolstoy", "9781400079988", 2500, 1869),
    ("The Road", "Cormac McCarthy", "9780307387899", 1700, 2006),
    ("The Shining", "Stephen King", "9780307743657", 1099, 1977),
    ("The Stand", "Stephen King", "9780307743688", 1299, 1978),
    ("Carrie", "Stephen King", "9780307743664", 999, 1974),
    ("Murder on the Orient Express", "Agatha Christie", "9780062693662", 1699, 1934),
    ("And Then There Were None", "Agatha Christie", "9780062073488", 1599, 1939),
    ("The Hitchhiker's Guide to the Galaxy", "Douglas Adams", "9780345391803", 899, 1979),
    ("Dune", "Frank Herbert", "9780441172719", 1099, 1965),
    ("Foundation", "Isaac Asimov", "9780553293357", 899, 1951),
    ("Neuromancer", "William Gibson", "9780441569595", 1799, 1984),
    ("Ender's Game", "Orson Scott Card", "9780812550702", 999, 1985),
    ("The Left Hand of Darkness", "Ursula K. Le Guin", "9780441478125", 1799, 1969),
    ("A Wizard of Earthsea", "Ursula K. Le Guin", "9780547773742", 999, 1968),
    ("Harry Potter and the Sorcerer's Stone", "J. K. Rowling", "9780590353427", 1099, 1997),
    ("The Mythical Man-Month", "Frederick P. Brooks Jr.", "9780201835953", 3999, 1975),
    (
        "Design Patterns",
        "Erich Gamma, Richard Helm, Ralph Johnson, John Vlissides",
        "9780201633610",
        5499,
        1994,
    ),
    ("Refactoring", "Martin Fowler", "9780134757599", 4999, 1999),
    ("Patterns of Enterprise Application Architecture", "Martin Fowler", "9780321127426", 5999, 2002),
    ("Domain-Driven Design", "Eric Evans", "9780321125217", 5999, 2003),
    ("Enterprise Integration Patterns", "Gregor Hohpe, Bobby Woolf", "9780321200686", 5999, 2003),
    ("Clean Code", "Robert C. Martin", "9780132350884", 4499, 2008),
    ("The Pragmatic Programmer", "David Thomas, Andrew Hunt", "9780135957059", 4999, 1999),
    ("Release It!", "Michael T. Nygard", "9781680502398", 4795, 2007),
    (
        "Site Reliability Engineering",
        "Betsy Beyer, Chris Jones, Jennifer Petoff, Niall Richard Murphy",
        "9781491929124",
        4999,
        2016,
    ),
    ("Designing Data-Intensive Applications", "Martin Kleppmann", "9781449373320", 5999, 2017),
    ("Building Microservices", "Sam Newman", "9781492034025", 5999, 2015),
    ("Microservices Patterns", "Chris Richardson", "9781617294549", 4999, 2018),
    ("Architecture Patterns with Python", "Harry Percival, Bob Gregory", "9781492052203", 5999, 2020),
    ("Fluent Python", "Luciano Ramalho", "9781492056355", 6999, 2015),
    (
        "Structure and Interpretation of Computer Programs",
        "Harold Abelson, Gerald Jay Sussman",
        "9780262510875",
        5500,
        1985,
    ),
)

BOOKS: tuple[Book, ...] = tuple(
    Book(book_id=index, title=title, author=author, isbn=isbn, price_cents=price_cents, year=year)
    for index, (title, author, isbn, price_cents, year) in enumerate(_SHELF, start=1)
)
