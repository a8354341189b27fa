"""How one declaration becomes a method of both clients.

An ``Operation`` wraps a builder of one ``Call`` (declared on ``Endpoints``, no ``self``); a
``Procedure`` wraps a method that returns a ``Program`` (several steps, or the client's own
state). Read from a ``Client`` either is a plain method; from an ``AsyncClient``, a coroutine
method; both with the declaration's signature and docstring.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeAlias, TypeVar, overload

from ccat_api.client.call import Call
from ccat_api.client.program import Program

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S")

AsyncMethod: TypeAlias = Callable[P, Coroutine[Any, Any, T]]


class Runner(abc.ABC):
    @abc.abstractmethod
    def _program(self, call: Call[T]) -> Program[T]:
        """What making ``call`` takes (one request, or a trip through the spool)."""


class SyncRunner(Runner):
    @abc.abstractmethod
    def _run(self, program: Program[T]) -> T: ...


class AsyncRunner(Runner):
    @abc.abstractmethod
    async def _run(self, program: Program[T]) -> T: ...


def _bind(
    runner: Runner, start: Callable[P, Program[T]], like: Callable[..., Any]
) -> Callable[P, T] | AsyncMethod[P, T]:
    if isinstance(runner, AsyncRunner):
        async_runner = runner

        @functools.wraps(like)
        async def run_async(*args: P.args, **kwargs: P.kwargs) -> T:
            return await async_runner._run(start(*args, **kwargs))

        return run_async
    assert isinstance(runner, SyncRunner)
    sync_runner = runner

    @functools.wraps(like)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return sync_runner._run(start(*args, **kwargs))

    return run


class Method(Generic[P, T], abc.ABC):
    """A declaration that becomes a method of whichever client reads it."""

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SyncRunner, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncRunner, owner: type[Any]) -> AsyncMethod[P, T]: ...

    def __get__(
        self, client: Runner | None, owner: type[Any]
    ) -> Self | Callable[P, T] | AsyncMethod[P, T]:
        if client is None:
            return self
        start, like = self._starter(client, owner)
        return _bind(client, start, like)

    @abc.abstractmethod
    def _starter(
        self, client: Runner, owner: type[Any]
    ) -> tuple[Callable[P, Program[T]], Callable[..., Any]]:
        """What starts the program, and whose signature and docstring the method shows."""


class Operation(Method[P, T]):
    """A call builder: the request ``build`` describes, made as the client makes calls."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    def _starter(
        self, client: Runner, owner: type[Any]
    ) -> tuple[Callable[P, Program[T]], Callable[..., Any]]:
        build = self.build

        def start(*args: P.args, **kwargs: P.kwargs) -> Program[T]:
            return client._program(build(*args, **kwargs))

        return start, build


class Procedure(Method[P, T], Generic[S, P, T]):
    """A method of the client that returns a program."""

    def __init__(self, method: Callable[Concatenate[S, P], Program[T]]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    def _starter(
        self, client: Runner, owner: type[Any]
    ) -> tuple[Callable[P, Program[T]], Callable[..., Any]]:
        start: Callable[P, Program[T]] = self.method.__get__(client, owner)
        return start, start


def operation(build: Callable[P, Call[T]]) -> Operation[P, T]:
    return Operation(build)


def procedure(method: Callable[Concatenate[S, P], Program[T]]) -> Procedure[S, P, T]:
    return Procedure(method)
