"""Argument checks shared by the SCConv layers.

Every check raises ``ValueError`` at construction time with a message that
names the argument, the offending value and what would work instead.
"""


def check_positive_int(name: str, value) -> None:
    """Require ``value`` to be an ``int`` greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}.')


def check_divides(name: str, divisor: int, what: str, dividend: int,
                  fix: str) -> None:
    """Require ``divisor`` to divide ``dividend``.

    Args:
        name (str): The argument holding ``divisor``.
        divisor (int): The value that must divide.
        what (str): What ``dividend`` is, e.g. ``'channels'``.
        dividend (int): The value to divide.
        fix (str): A hint on what would work.
    """
    if dividend % divisor != 0:
        raise ValueError(f'{name}={divisor} does not divide {what} '
                         f'({dividend}); {fix}.')


def divisors(n: int) -> list:
    """Return the divisors of ``n`` in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]
