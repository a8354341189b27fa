"""Work of several steps described without I/O, so one description serves both clients.

A program is a generator. It yields a step, a ``Call`` to make under the retry policy or a
``Pause``, and is sent the step's answer; an exception the step ended in is thrown into it at
the ``yield``. ``Client`` and ``AsyncClient`` only perform the steps (blocking or awaiting);
``Stepper`` keeps the rest, so waiting for visibility and sending the spool in order are
written once.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, cast

from ccat_api.client.call import Call

T = TypeVar("T")


@dataclass(frozen=True)
class Pause:
    seconds: float


Step: TypeAlias = Call[Any] | Pause
Program: TypeAlias = Generator[Step, Any, T]


def one(call: Call[T]) -> Program[T]:
    """The program of a single call."""
    answer: T = yield call
    return answer


@dataclass(frozen=True)
class Outcome:
    """How a step ended: its answer, or the exception to throw into the program."""

    value: Any = None
    error: BaseException | None = None


class Stepper(Generic[T]):
    """Runs a program from one step to the next; a client performs each ``step`` and hands
    back its ``Outcome``, until ``finished``."""

    def __init__(self, program: Program[T]) -> None:
        self.program = program
        self.step: Step = Pause(0)
        self.finished = False
        self._result: Any = None

    def advance(self, outcome: Outcome) -> None:
        """Resume the program with ``outcome``; it runs until its next step or its end."""
        try:
            if outcome.error is not None:
                self.step = self.program.throw(outcome.error)
            else:
                self.step = self.program.send(outcome.value)
        except StopIteration as done:
            self.finished = True
            self._result = done.value

    def result(self) -> T:
        assert self.finished, "the program has not finished"
        return cast(T, self._result)

    def close(self) -> None:
        """Runs the program's ``finally`` blocks (a lock it holds) when it was cut short."""
        self.program.close()
