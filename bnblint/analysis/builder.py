"""Build the analysis model: one ordered walk over a module's statements.

The walk is a tiny abstract interpreter. Each scope keeps an environment (name -> static value)
that is updated statement by statement, so the binding that reaches a call is the one written
before it. Branches are walked on copies and joined into ``Choice`` values. Function bodies get
their own environment whose parent is the module's; unknown inputs (parameters, loop targets,
anything not evaluable) are ``Unknown`` so rules stay silent on them.

The walk reads the stdlib ``ast`` of one parse of the module's text (``bnblint.parse.parse_ast``);
every node the model holds is a node of that tree or a ``DictItem`` of one of its dicts. No
scope or qualified-name resolution is used: this walk needs only what it tracks.
"""

from __future__ import annotations

import ast
import itertools
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Union

from bnblint.analysis.model import LoadSite, ModelUse, ModuleModel, resolve_quantization
from bnblint.analysis.names import FOREIGN_NAMES, FOREIGN_ROOTS, NON_MODEL_SUFFIXES
from bnblint.analysis.relevance import FunctionIndex
from bnblint.analysis.syntax import Positions, child_nodes, dict_items, string_value
from bnblint.analysis.values import (
    TORCH_DTYPES,
    BnbConfig,
    Choice,
    ClassValue,
    Dtype,
    Entry,
    Function,
    Instance,
    Literal,
    LoadResult,
    Mapping,
    MaybeAbsent,
    OtherConfig,
    Overridden,
    Symbol,
    TrlConfig,
    Unknown,
    Value,
    flatten,
    is_none,
)

if TYPE_CHECKING:
    from bnblint.project import Project

BNB_CONFIG_NAMES = frozenset(
    {
        "BitsAndBytesConfig",
        "transformers.BitsAndBytesConfig",
        "transformers.utils.quantization_config.BitsAndBytesConfig",
        "transformers.utils.BitsAndBytesConfig",
    }
)
PIPELINE_IGNORED = frozenset({"load_in_4bit", "load_in_8bit", "quantization_config"})
PIPELINE_NAMES = frozenset({"pipeline", "transformers.pipeline", "transformers.pipelines.pipeline"})
# Methods that return the model itself, so ``M.from_pretrained(...).eval()`` is still the model.
SELF_RETURNING = frozenset({"eval", "train", "requires_grad_", "cuda", "cpu", "to"})

UNBOUND = Unknown(None, "possibly unbound")
MAYBE_ABSENT = MaybeAbsent(None, "present on some paths only")
_JOINS = itertools.count()
NONE = Literal(None, None)
# Roots of the packages whose from_pretrained is transformers' own loader (PEFT's AutoPeftModel*
# and TRL's value-head models forward the load keywords to it).
LOADER_ROOTS = frozenset({"transformers", "peft", "trl"})
# How deep calls with known arguments are followed (f -> g -> h), and how many times one function
# is re-walked with the arguments of different calls.
MAX_CALL_DEPTH = 4
MAX_SPECIALIZATIONS = 12
# At most this many keyword mappings per load (branches that write ``kwargs`` differently).
MAX_ALTERNATIVES = 8
MAX_PATHS = 256
# Methods walked first in a class: they set the instance attributes the others read.
INIT_METHODS = ("__init__", "__post_init__", "setup")


@dataclass(frozen=True)
class Hop:
    """One call on the way to a load: ``name()`` called at ``call`` in ``builder``'s module."""

    name: str
    call: ast.Call
    builder: ModelBuilder


FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef]
Scope = Union[ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]
# An argument of a call, in source order: a positional expression (``ast.Starred`` for
# ``*args``) or an ``ast.keyword`` (``arg`` None for ``**kwargs``).
Argument = Union[ast.expr, ast.keyword]




class Env:
    """Name bindings of one scope, with the module scope as parent."""

    __slots__ = ("vars", "parent")

    def __init__(self, parent: Env | None = None, vars: dict[str, Value] | None = None) -> None:
        self.vars: dict[str, Value] = {} if vars is None else vars
        self.parent = parent

    def lookup(self, name: str) -> Value | None:
        if name in self.vars:
            return self.vars[name]
        return self.parent.lookup(name) if self.parent is not None else None

    def copy(self) -> Env:
        return Env(self.parent, dict(self.vars))

    def join(self, branches: Sequence[Env]) -> None:
        """Make this env the merge of ``branches`` (each a copy of it that ran one path)."""
        join_id = next(_JOINS)
        names = set().union(*(b.vars for b in branches))
        for name in names:
            values = [b.vars.get(name, UNBOUND) for b in branches]
            first = values[0]
            if all(v is first for v in values):
                self.vars[name] = first
            else:
                unique: list[Value] = []
                index: list[int] = []
                for v in values:
                    at = next((i for i, u in enumerate(unique) if u is v), None)
                    if at is None:
                        at = len(unique)
                        unique.append(v)
                    index.append(at)
                choice = Choice(tuple(unique), join=join_id, branches=tuple(index))
                self.vars[name] = _bounded(choice)


def qualname(value: Value | None) -> str | None:
    return value.qualname if isinstance(value, Symbol) else None


def _literal(node: ast.Constant) -> Value:
    """A str, int, float, bool or None constant; anything else (bytes, complex, ``...``) is
    unknown."""
    v = node.value
    if v is None or isinstance(v, (str, bool, int, float)):
        return Literal(v, node)
    return Unknown(node)


def _calls_in(node: ast.AST) -> list[ast.Call]:
    """The calls inside one statement's expressions, in source order (a call before the calls
    in its arguments), not inside lambdas (nor nested definitions)."""
    calls: list[ast.Call] = []
    todo: list[ast.AST] = [node]
    while todo:
        current = todo.pop()
        cls = type(current)
        if cls is ast.Name or cls is ast.Constant:
            continue
        children: list[ast.AST]
        if cls is ast.Call:
            assert isinstance(current, ast.Call)
            calls.append(current)
            children = [current.func, *call_arguments(current)]
        elif cls is ast.Dict:
            assert isinstance(current, ast.Dict)
            children = []
            for key, value in zip(current.keys, current.values):
                if key is not None:
                    children.append(key)
                children.append(value)
        elif cls is ast.IfExp:
            assert isinstance(current, ast.IfExp)
            children = [current.body, current.test, current.orelse]
        elif cls in _OPAQUE:
            continue
        else:
            children = child_nodes(current)
        children.reverse()
        todo.extend(children)
    return calls


# Nodes whose insides are not evaluated where they are written.
_OPAQUE = frozenset({ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})


def call_arguments(call: ast.Call) -> list[Argument]:
    """A call's positional arguments and keywords in source order (``f(a, k=1, *b, **c)``).

    Plain positional arguments always come first (Python forbids one after a keyword); only a
    ``*args`` may follow a keyword, so the two lists are merged by position only then."""
    if not call.keywords:
        return list(call.args)
    if not call.args:
        return list(call.keywords)
    items: list[Argument] = [*call.args, *call.keywords]
    if any(isinstance(a, ast.Starred) for a in call.args):
        items.sort(key=lambda a: (a.lineno, a.col_offset))
    return items


def _is_elif(stmt: ast.If) -> bool:
    """Whether ``stmt``'s ``orelse`` is an ``elif`` (not an ``else:`` block holding an ``if``):
    an ``elif`` starts at the column of its ``if``, a statement of an ``else:`` block deeper."""
    orelse = stmt.orelse
    return (
        len(orelse) == 1
        and isinstance(orelse[0], ast.If)
        and orelse[0].col_offset == stmt.col_offset
        and orelse[0].lineno > stmt.lineno
    )



class ModelBuilder:
    def __init__(
        self,
        module: ast.Module,
        source: str,
        index: FunctionIndex | None = None,
        project: Project | None = None,
        path: str | None = None,
        module_name: str | None = None,
    ) -> None:
        self.module = module
        self.source = source
        self.index = index
        self.project = project
        self.path = path  # the file, as the project names it
        if module_name is None and project is not None and path:
            module_name = project.module_name(path)
        self.module_name = module_name  # as imported (a namespace package has no __init__)
        self.is_package = bool(path) and str(path).endswith("__init__.py")
        self.module_env: Env | None = None
        # The builder whose model collects what calls with known arguments find: the document
        # being analysed, even while a function of another module runs.
        self.sink: ModelBuilder = self
        self.via: tuple[Hop, ...] = ()
        self.specializations: dict[tuple[int, int], int] = {}
        self.class_values: dict[int, ClassValue] = {}
        self.merged: dict[int, tuple[Choice, Mapping | None]] = {}
        # Methods of summarised classes not run yet (see ``summarise``), by class.
        self.deferred: dict[int, list[tuple[FunctionNode, Env]]] = {}
        self.current_class: ClassValue | None = None
        self.paths: dict[int, tuple[str, ...]] = {}  # def/class node -> its FunctionIndex path
        self.loads: list[LoadSite] = []
        self.uses: list[ModelUse] = []
        self.sites: dict[int, LoadSite] = {}
        self.configs: dict[int, BnbConfig] = {}
        self.functions: dict[int, Function] = {}
        self.def_envs: dict[int, Env] = {}
        self.done_functions: set[int] = set()
        self.running: set[int] = set()
        self.pending: list[tuple[FunctionNode | ast.ClassDef, Env]] = []
        self.returns: list[list[Value]] = []
        self.scopes: list[Scope] = []
        self.blocks: list[int] = []  # ids of the statement lists being walked (LoadSite.block)
        self.calls: dict[int, list[ast.Call]] = {}  # the calls of each statement scanned

    @cached_property
    def positions(self) -> Positions:
        """Rows and character columns of this module's nodes (of ``source``)."""
        return Positions(self.source)

    # -- driver ---------------------------------------------------------------------------

    def build(self) -> ModuleModel:
        module_env = self.module_env = Env()
        self.scopes.append(self.module)
        self.block(self.module.body, module_env)
        interesting = _interesting_names(module_env)
        while self.pending:
            node, parent = self.pending.pop(0)
            if not isinstance(node, ast.ClassDef):
                fn = self.function(node)
                if (
                    fn.cls is not None
                    or self.index is None
                    or self.index.may_matter(self.paths.get(id(node), ()), interesting)
                ):
                    self.run_function(node, parent)
            else:
                self.run_class(node, parent)
        torch_alias = None
        for name, value in module_env.vars.items():
            if qualname(value) == "torch" and (torch_alias is None or name == "torch"):
                torch_alias = name
        configs = {id(c.node): c for c in self.configs.values() if not c.is_dict}
        for site in self.loads:
            for config in site.configs:
                if config.is_dict:
                    configs.setdefault(id(config.node), self.configs.get(id(config.node), config))
        module_names = {name: qualname(value) for name, value in module_env.vars.items()}
        return ModuleModel(
            self.module,
            self.loads,
            self.uses,
            torch_alias,
            self.source,
            list(configs.values()),
            module_names,
        )

    def summarise(self) -> None:
        """Walk the module level and the class bodies only: what an importer may read. Function
        bodies run when a call reaches them; a class's methods when its instance attributes are
        read."""
        module_env = self.module_env = Env()
        self.scopes.append(self.module)
        self.block(self.module.body, module_env)
        while self.pending:
            node, parent = self.pending.pop(0)
            if isinstance(node, ast.ClassDef):
                self.run_class(node, parent)
            else:
                fn = self.function(node)
                if fn.cls is not None:
                    self.deferred.setdefault(id(fn.cls), []).append((node, parent))

    def complete_class(self, cls: ClassValue) -> None:
        """Run the methods of a summarised class, so its instance attributes are known."""
        for node, parent in self.deferred.pop(id(cls), []):
            self.run_function(node, parent)

    def run_class(self, node: ast.ClassDef, parent: Env) -> None:
        cls = self.class_value(node)
        self.scopes.append(node)
        self.blocks = [id(node)]
        env = Env(parent)
        outer, self.current_class = self.current_class, cls
        first = len(self.pending)
        self.block(node.body, env)
        self.current_class = outer
        self.blocks = []
        self.scopes.pop()
        for name, value in env.vars.items():
            cls.attrs[name] = value
        # Methods see the enclosing scope, not the class body; the ones that set instance
        # attributes run first, so the others read what they set.
        methods = self.pending[first:]
        del self.pending[first:]
        methods.sort(key=lambda m: _init_rank(m[0]))
        self.pending.extend((m, parent) for m, _ in methods)

    def class_value(self, node: ast.ClassDef) -> ClassValue:
        value = self.class_values.get(id(node))
        if value is None:
            value = ClassValue(node.name, node, owner=self, module=self.module_name)

            self.class_values[id(node)] = value
        return value

    def bind_params(
        self,
        fn: Function,
        env: Env,
        args: Sequence[Value] | None = None,
        kwargs: dict[str, Entry] | None = None,
        bound_self: Value | None = None,
        exact: bool = True,
    ) -> None:
        """Bind parameters: to the call's arguments when known, else to what the function
        itself says of them (a default may be what arrives; ``**kwargs`` is an open mapping
        whose keys this body may write)."""
        node = fn.node
        params = node.args
        every = [*params.posonlyargs, *params.args]
        # ``defaults`` belong to the last positional parameters, ``kw_defaults`` one each.
        skip = len(every) - len(params.defaults)
        defaults: list[ast.expr | None] = [
            None if i < skip else params.defaults[i - skip] for i in range(len(every))
        ]
        positional = list(zip(every, defaults))
        known = args is not None and kwargs is not None and exact
        given = list(args or ())
        named = dict(kwargs or {})
        if fn.cls is not None and positional and not _is_static(node):
            first = positional.pop(0)[0]
            env.vars[first.arg] = bound_self if bound_self is not None else Instance(fn.cls, first)
        kwonly = list(zip(params.kwonlyargs, params.kw_defaults))
        for i, (p, default) in enumerate((*positional, *kwonly)):
            name = p.arg
            if i < len(positional) and given:
                env.vars[name] = given.pop(0)
            elif name in named:
                env.vars[name] = named.pop(name).value
            elif known and default is not None:
                env.vars[name] = self.eval(default, env)  # a known call that omits it
            elif default is not None:
                value = self.eval(default, env)
                env.vars[name] = Choice((value, Unknown(p, "a parameter")), p)
            else:
                env.vars[name] = Unknown(p, "a parameter")
        if params.vararg is not None:
            env.vars[params.vararg.arg] = Unknown(params.vararg, "a parameter")
        star = params.kwarg
        if star is not None:
            # The caller's keywords, where the caller wrote them; open unless the call is known
            # completely.
            env.vars[star.arg] = Mapping(dict(named), star, complete=known)

    def run_function(self, node: FunctionNode, parent: Env) -> list[Value]:
        fn = self.function(node)
        if id(node) in self.done_functions or id(node) in self.running:
            return fn.returns
        self.running.add(id(node))
        env = Env(parent)
        self.bind_params(fn, env)
        self.returns.append(fn.returns)
        self.scopes.append(node)
        blocks, self.blocks = self.blocks, [id(node)]  # a call runs it from elsewhere
        self.block(node.body, env)
        self.blocks = blocks
        self.scopes.pop()
        self.returns.pop()
        self.running.discard(id(node))
        self.done_functions.add(id(node))
        return fn.returns

    def run_specialized(
        self,
        fn: Function,
        args: Sequence[Value],
        kwargs: dict[str, Entry],
        hop: Hop,
        sink: ModelBuilder,
        bound_self: Value | None = None,
        exact: bool = True,
    ) -> list[Value] | None:
        """Walk ``fn`` again with a known call's arguments. The load sites it meets are new
        sites (the same call, other keywords) collected by ``sink``, remembering ``hop``."""
        node = fn.node
        # Counted per analysed document (the sink): a cached summary serves many.
        key = (id(self), id(node))
        count = sink.specializations.get(key, 0)
        if (
            id(node) in self.running
            or count >= MAX_SPECIALIZATIONS
            or len(sink.via) >= MAX_CALL_DEPTH
        ):
            return None
        sink.specializations[key] = count + 1
        saved = (self.sites, self.sink, self.via, self.returns, self.blocks, self.pending)
        saved_configs = self.configs
        # Configs written in the body depend on this call's arguments: evaluated afresh.
        self.configs = dict(saved_configs)
        for stale in [k for k, c in self.configs.items() if _within(c.node, node)]:
            del self.configs[stale]
        self.sites, self.sink, self.via = {}, sink, (*sink.via, hop)
        self.returns, self.blocks, self.pending = [[]], [id(node)], []
        sink_via, sink.via = sink.via, self.via
        self.running.add(id(node))
        env = Env(self.def_envs.get(id(node), self.module_env))
        try:
            self.bind_params(fn, env, args, kwargs, bound_self, exact)
            self.scopes.append(node)
            self.block(node.body, env)
            self.scopes.pop()
            returns = self.returns[0]
        finally:
            self.running.discard(id(node))
            sink.via = sink_via
            self.sites, self.sink, self.via, self.returns, self.blocks, self.pending = saved
            self.configs = saved_configs
        return returns

    def function(self, node: FunctionNode) -> Function:

        fn = self.functions.get(id(node))
        if fn is None:
            fn = self.functions[id(node)] = Function(node, owner=self, cls=self.current_class)
        return fn

    # -- statements -----------------------------------------------------------------------

    def block(self, stmts: Iterable[ast.stmt], env: Env) -> None:
        for stmt in stmts:
            self.statement(stmt, env)

    def statement(self, stmt: ast.stmt, env: Env) -> None:
        if isinstance(stmt, ast.If):
            self.scan(stmt.test, env)
            then = env.copy()
            other = env.copy()
            self.narrow(stmt.test, then, other)
            self.suite(stmt.body, then)
            if _is_elif(stmt):
                # an elif is no block of its own: its test is read where its ``if`` is
                self.statement(stmt.orelse[0], other)
            elif stmt.orelse:
                self.suite(stmt.orelse, other)
            env.join([then, other])
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            if isinstance(stmt, ast.While):
                self.scan(stmt.test, env)
            else:
                self.scan(stmt.iter, env)
            body = env.copy()
            if not isinstance(stmt, ast.While):
                self.bind_unknown(stmt.target, body)
            self.suite(stmt.body, body)
            branches = [env.copy(), body]
            if stmt.orelse:
                after = env.copy()
                after.join([env.copy(), body])
                self.suite(stmt.orelse, after)
                branches.append(after)
            env.join(branches)
        elif isinstance(stmt, ast.Try) or (
            sys.version_info >= (3, 11) and isinstance(stmt, ast.TryStar)
        ):
            body = env.copy()
            self.suite(stmt.body, body)
            branches = [body]
            for handler in stmt.handlers:
                h = env.copy()
                h.join([env.copy(), body])
                if handler.name is not None:
                    h.vars[handler.name] = Unknown(handler)
                self.suite(handler.body, h)
                branches.append(h)
            if stmt.orelse:
                self.suite(stmt.orelse, body)
            env.join(branches)
            if stmt.finalbody:
                self.suite(stmt.finalbody, env)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self.scan(item.context_expr, env)
                if item.optional_vars is not None:
                    self.bind_unknown(item.optional_vars, env)
            self.suite(stmt.body, env)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            env.vars[stmt.name] = self.function(stmt)
            self.def_envs[id(stmt)] = env
            self.paths[id(stmt)] = (*self.paths.get(id(self.scopes[-1]), ()), stmt.name)
            self.pending.append((stmt, env))
        elif isinstance(stmt, ast.ClassDef):
            cls = self.class_value(stmt)
            cls.bases = tuple(
                self.eval(b.value if isinstance(b, ast.Starred) else b, env) for b in stmt.bases
            )
            env.vars[stmt.name] = cls
            self.paths[id(stmt)] = (*self.paths.get(id(self.scopes[-1]), ()), stmt.name)
            self.pending.append((stmt, env))
        elif sys.version_info >= (3, 10) and isinstance(stmt, ast.Match):
            self.scan(stmt.subject, env)
            branches = [env.copy()]
            for case in stmt.cases:
                c = env.copy()
                self.suite(case.body, c)
                branches.append(c)
            env.join(branches)
        else:
            self.scan(stmt, env, stmt)
            self.simple(stmt, env)

    def suite(self, body: list[ast.stmt], env: Env) -> None:
        self.blocks.append(id(body))
        self.block(body, env)
        self.blocks.pop()

    def simple(self, stmt: ast.stmt, env: Env) -> None:
        """A statement that is not compound (LibCST's "small statement")."""
        if isinstance(stmt, ast.Assign):
            value = self.eval(stmt.value, env)
            for target in stmt.targets:
                self.assign(target, value, stmt, env)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value, env), stmt, env)
        elif isinstance(stmt, ast.AugAssign):
            self.bind_unknown(stmt.target, env)
        elif isinstance(stmt, ast.Expr):
            self.mutation(stmt.value, env)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname is not None:
                    env.vars[alias.asname] = Symbol(alias.name, alias)
                else:
                    root = alias.name.split(".")[0]
                    env.vars[root] = Symbol(root, alias)
        elif isinstance(stmt, ast.ImportFrom):
            level = stmt.level or 0
            if level or stmt.module is None:
                base = "." * level + (stmt.module or "")
                absolute = self.absolute(level, stmt.module)
                if absolute is not None:
                    base = absolute
            else:
                base = stmt.module
            if len(stmt.names) == 1 and stmt.names[0].name == "*":
                self.import_star(base, env)
                return
            for alias in stmt.names:
                bound = alias.asname if alias.asname is not None else alias.name
                env.vars[bound] = Symbol(f"{base}.{alias.name}", alias)
        elif isinstance(stmt, ast.Return):
            if self.returns:
                value = NONE if stmt.value is None else self.eval(stmt.value, env)
                self.returns[-1].append(value)
        elif isinstance(stmt, ast.Delete):
            # ``del a, b`` lists its targets; ``del (a, b)`` is one tuple (LibCST: both a tuple)
            only = stmt.targets[0] if len(stmt.targets) == 1 else None
            items = only.elts if isinstance(only, ast.Tuple) else stmt.targets
            for item in items:
                if isinstance(item, ast.Subscript) and isinstance(item.value, ast.Name):
                    key = _subscript_key(item)
                    name = item.value.id
                    if key is None:
                        self.invalidate(name, env.lookup(name), env)
                    else:
                        self.remove_key(name, env.lookup(name), key, env)
                else:
                    self.bind_unknown(item, env)


    def import_star(self, module: str, env: Env) -> None:
        """``from pkg.model import *`` of a project module: its public names (``__all__`` when
        it is a literal list), as the module binds them."""
        if self.project is None:
            return
        path = self.project.module_path(module, self.path)
        builder = self.project.builder_for(path, module) if path is not None else None
        if builder is None or builder.module_env is None:
            return
        names = builder.module_env.vars
        exported = names.get("__all__")
        if isinstance(exported, Literal) and isinstance(exported.value, (list, tuple)):
            public = [n for n in exported.value if isinstance(n, str) and n in names]
        else:
            public = [n for n in names if not n.startswith("_")]
        for name in public:
            env.vars[name] = names[name]

    def absolute(self, level: int, module: str | None) -> str | None:
        """The absolute name of ``from <dots><module> import ...`` in this module's package."""
        if self.module_name is None:
            return None
        parts = self.module_name.split(".")
        keep = len(parts) - level + (1 if self.is_package else 0)
        if keep < 1:
            return None
        base = ".".join(parts[:keep])
        return f"{base}.{module}" if module is not None else base

    def narrow(self, test: ast.expr, then: Env, other: Env) -> None:
        """On each branch of an ``if``, a name is only what it can be there: ``x is None``,
        ``x``, ``"k" in kw``, combined with ``not``, ``and`` and ``or`` (a parameter's default
        rebuilt in the body; keys deleted only where a config was written)."""
        self.narrow_env(test, then, True)
        self.narrow_env(test, other, False)

    def narrow_env(self, test: ast.expr, env: Env, truth: bool) -> None:
        """What ``env`` can hold on the branch where ``test`` is ``truth``."""
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            self.narrow_env(test.operand, env, not truth)
            return
        if isinstance(test, ast.BoolOp):
            # ``a and b`` true: all are; ``a or b`` false: none is.
            if isinstance(test.op, ast.And) == truth:
                for value in test.values:
                    self.narrow_env(value, env, truth)
            return
        if isinstance(test, ast.Name):
            if truth:  # the falsy side may hold any falsy value: only the true side narrows
                _narrow_to(env, test.id, none=False)
            return
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
            return
        op = test.ops[0]
        right = test.comparators[0]
        if (
            isinstance(test.left, ast.Name)
            and isinstance(right, ast.Constant)
            and right.value is None
            and isinstance(op, (ast.Is, ast.IsNot))
        ):
            _narrow_to(env, test.left.id, none=isinstance(op, ast.Is) == truth)
        elif isinstance(right, ast.Name) and isinstance(op, (ast.In, ast.NotIn)):
            key = string_value(test.left)
            if key is not None:
                _narrow_key(env, right.id, key, present=isinstance(op, ast.In) == truth)

    def bind_unknown(self, target: ast.expr, env: Env) -> None:
        if isinstance(target, ast.Name):
            env.vars[target.id] = Unknown(target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self.bind_unknown(element, env)
        elif isinstance(target, ast.Starred):
            self.bind_unknown(target.value, env)

    def assign(self, target: ast.expr, value: Value, stmt: ast.stmt, env: Env) -> None:
        if isinstance(target, ast.Name):
            env.vars[target.id] = value
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            # kw["quantization_config"] = cfg
            key = _subscript_key(target)
            name = target.value.id
            container = env.lookup(name)
            if key is None:
                self.invalidate(name, container, env)
            else:
                self.set_key(name, container, key, Entry(value, stmt), env)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            # cfg.bnb_4bit_compute_dtype = torch.bfloat16
            name = target.value.id
            container = env.lookup(name)
            if isinstance(container, BnbConfig) and not container.is_dict:
                env.vars[name] = container.with_option(target.attr, Entry(value, stmt))
            elif isinstance(container, Instance):
                # self.model_args = {...}: what any method of the class may read later
                container.cls.instance_attrs.setdefault(target.attr, []).append(value)
        elif (
            isinstance(target, ast.Subscript)
            and isinstance(target.value, ast.Attribute)
            and isinstance(target.value.value, ast.Name)
        ):
            container = env.lookup(target.value.value.id)
            if isinstance(container, Instance):
                container.cls.mutated.add(target.value.attr)
        else:
            self.bind_unknown(target, env)

    def set_key(self, name: str, container: Value | None, key: str, entry: Entry, env: Env) -> None:
        new = _each_mapping(container, lambda m: m.with_entry(key, entry), dict_configs=True)
        if new is not None:
            env.vars[name] = new

    def remove_key(self, name: str, container: Value | None, key: str, env: Env) -> None:
        """``kw.pop("k")`` / ``del kw["k"]``: the key is gone on this path."""

        def drop(m: Mapping) -> Mapping:
            return Mapping({k: e for k, e in m.entries.items() if k != key}, m.node, m.complete)

        new = _each_mapping(container, drop)
        if new is not None:
            env.vars[name] = new

    def invalidate(self, name: str, container: Value | None, env: Env) -> None:
        """A mutation the analysis cannot follow (an unknown merge or key): absent keys may now
        be present, and the values of present keys may have been replaced."""
        new = _each_mapping(container, _opened)
        if new is not None:
            env.vars[name] = new

    def mutation(self, expr: ast.expr, env: Env) -> None:
        """``kw.update(...)``, ``kw.setdefault(...)`` and other in-place changes of a dict."""
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and isinstance(expr.func.value, ast.Attribute)
            and isinstance(expr.func.value.value, ast.Name)
            and expr.func.attr in {"update", "setdefault", "pop", "clear", "__setitem__"}
        ):
            owner = env.lookup(expr.func.value.value.id)
            if isinstance(owner, Instance):  # self.kw.update(...): the attribute is open
                owner.cls.mutated.add(expr.func.value.attr)
            return
        if not (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and isinstance(expr.func.value, ast.Name)
        ):
            return
        name = expr.func.value.id
        container = env.lookup(name)
        if not isinstance(container, (Mapping, BnbConfig)) and not (
            isinstance(container, Choice)
            and any(isinstance(o, (Mapping, BnbConfig)) for o in flatten(container))
        ):
            return
        method = expr.func.attr
        # The arguments in source order; a keyword's value is what is read (LibCST's Arg).
        args = [_argument_value(a) for a in call_arguments(expr)]
        if method == "update":
            update = self.mapping_from_args(
                [*expr.args, *expr.keywords], expr, env, positional=True
            )
            if not update.complete:
                self.invalidate(name, env.lookup(name), env)
            for key, entry in update.entries.items():
                self.set_key(name, env.lookup(name), key, entry, env)
        elif method == "setdefault" and args:
            key_value = self.eval(args[0], env)
            current = env.lookup(name)
            entries = current.entries if isinstance(current, Mapping) else None
            if isinstance(key_value, Literal) and isinstance(key_value.value, str):
                if entries is not None and key_value.value not in entries:
                    default = self.eval(args[1], env) if len(args) > 1 else NONE
                    self.set_key(name, current, key_value.value, Entry(default, expr), env)
            else:
                self.invalidate(name, current, env)
        elif method == "pop" and args:
            key_value = self.eval(args[0], env)

            if isinstance(key_value, Literal) and isinstance(key_value.value, str):
                self.remove_key(name, container, key_value.value, env)
            else:
                self.invalidate(name, container, env)
        elif method in {"pop", "clear", "popitem", "__setitem__"}:
            self.invalidate(name, container, env)

    # -- calls inside a statement ---------------------------------------------------------

    def scan(self, node: ast.AST, env: Env, statement: ast.stmt | None = None) -> None:
        """Record load sites and model method calls in one statement, in evaluation order."""
        # Inner calls are evaluated first (arguments before the call that receives them).
        calls = self.calls.get(id(node))
        if calls is None:  # a function run again with a call's arguments scans it again
            calls = self.calls[id(node)] = _calls_in(node)
        for call in reversed(calls):
            if id(call) in self.sites:
                continue
            site = self.load_site(call, env)
            if site is not None:
                site.block = tuple(self.blocks)
                site.via = self.via
                self.sites[id(call)] = site
                for variant in _variants(site):
                    self.sink.loads.append(variant)
            elif isinstance(call.func, ast.Attribute):
                receiver = self.eval(call.func.value, env)
                if isinstance(receiver, LoadResult):
                    self.sink.uses.append(self.model_use(receiver, call, env, statement))

    def model_use(
        self, receiver: LoadResult, call: ast.Call, env: Env, statement: ast.stmt | None
    ) -> ModelUse:
        site = receiver.site
        assert isinstance(call.func, ast.Attribute)
        args = tuple(self.eval(a, env) for a in call.args if not isinstance(a, ast.Starred))
        whole = isinstance(statement, ast.Expr) and statement.value is call
        assigned = None
        if (
            isinstance(statement, ast.Assign)
            and statement.value is call
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            assigned = statement.targets[0].id
        return ModelUse(
            site,
            call.func.attr,
            call,
            args,
            self.mapping_from_args([k for k in call.keywords if k.arg is not None], call, env),
            statement,
            whole,
            assigned,
            tuple(self.blocks),
        )

    def load_site(self, call: ast.Call, env: Env) -> LoadSite | None:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "from_pretrained":
            receiver = self.eval(func.value, env)
            if isinstance(receiver, Instance):
                receiver = receiver.cls  # cls.from_pretrained(...) in a classmethod
            if isinstance(receiver, ClassValue):
                # A project class loads with transformers' loader only if it derives from a
                # transformers (or PEFT) class, directly or through project classes.
                bases = [b for b in receiver.external_bases() if _loader_name(b)]
                if not bases:
                    return None
                receiver = Symbol(bases[0], func.value)
            name = qualname(receiver)
            if name is not None and (_foreign(name) or not _loader_name(name)):
                return None
            if isinstance(receiver, Choice) and any(
                _foreign(qualname(o) or "") or not _loader_name(qualname(o) or "x")
                for o in receiver.options
            ):
                return None
            kwargs = self.mapping_from_args(call.keywords, call, env)
            site = LoadSite(call, "from_pretrained", name, kwargs, self.scopes[-1])
            site.alternatives = self.kwargs_alternatives(call, kwargs, env)
            return site
        if isinstance(func, ast.Name) and func.id == "dict" and env.lookup("dict") is None:
            return self.lazy_site(call, env)
        trainer = qualname(self.eval(func, env))
        if trainer is not None and trainer.split(".")[0] == "trl" and trainer.endswith("Trainer"):
            return self.trainer_site(call, env)
        if trainer in PIPELINE_NAMES:
            kwargs = self.mapping_from_args(call.keywords, call, env)

            # pipeline() hands only model_kwargs (and its own device_map/dtype) to the model:
            # a quantization keyword given to pipeline() itself is silently ignored.
            ignored = {k: e for k, e in kwargs.entries.items() if k in PIPELINE_IGNORED}
            kwargs = Mapping(
                {k: e for k, e in kwargs.entries.items() if k not in PIPELINE_IGNORED},
                kwargs.node,
                kwargs.complete,
            )
            model_kwargs = kwargs.entries.get("model_kwargs")
            inner = None
            if model_kwargs is not None:
                entries = {k: e for k, e in kwargs.entries.items() if k != "model_kwargs"}
                inner = self.as_mapping(model_kwargs.value)
                complete = kwargs.complete
                if inner is None:
                    complete = False
                else:
                    entries = {**inner.entries, **entries}
                    complete = complete and inner.complete
                kwargs = Mapping(entries, call, complete)
            site = LoadSite(call, "pipeline", "transformers.pipeline", kwargs, self.scopes[-1])
            site.model_kwargs = inner
            site.ignored = ignored
            return site
        return None

    # -- expressions ----------------------------------------------------------------------

    def eval(self, node: ast.expr, env: Env) -> Value:
        if isinstance(node, ast.Name):
            value = env.lookup(node.id)
            if value is None:
                return Symbol(node.id, node)
            return self.resolve(value) if isinstance(value, Symbol) else value
        if isinstance(node, ast.Attribute):
            base = self.eval(node.value, env)
            attr = node.attr
            if isinstance(base, Symbol):
                name = f"{base.qualname}.{attr}"
                if base.qualname == "torch" and attr in TORCH_DTYPES:
                    return Dtype(TORCH_DTYPES[attr], node)
                return self.resolve(Symbol(name, node))
            if isinstance(base, Instance):
                return self.instance_attr(base.cls, attr, node)
            if isinstance(base, ClassValue):
                for cls in base.mro():
                    if attr in cls.attrs:
                        return cls.attrs[attr]
                return Unknown(node)
            return Unknown(node)
        if isinstance(node, ast.Constant):
            return _literal(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.eval(node.operand, env)
            if isinstance(inner, Literal) and isinstance(inner.value, (int, float)):
                if not isinstance(inner.value, bool):
                    return Literal(-inner.value, node)
            return Unknown(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.eval(_argument_value(e), env) for e in node.elts]
            if all(isinstance(i, Literal) for i in items) and not any(
                isinstance(e, ast.Starred) for e in node.elts
            ):
                values = [i.value for i in items if isinstance(i, Literal)]
                return Literal(values if isinstance(node, ast.List) else tuple(values), node)
            return Unknown(node)
        if isinstance(node, ast.Dict):
            return self.dict_literal(node, env)
        if isinstance(node, ast.IfExp):
            return Choice((self.eval(node.body, env), self.eval(node.orelse, env)), node)
        if isinstance(node, ast.Call):
            return self.call(node, env)
        return Unknown(node)

    def resolve(self, symbol: Symbol) -> Value:
        """A name imported from a project module: what that module binds it to."""
        if self.project is None:
            return symbol
        value = self.project.lookup(symbol.qualname, self.path)
        return symbol if value is None else value

    def instance_attr(self, cls: ClassValue, attr: str, node: ast.AST) -> Value:
        """``self.<attr>``: every value the class (or a project base) assigns to it, or the
        class attribute; a mapping changed in place somewhere is open."""
        values: list[Value] = []
        mutated = False
        for c in cls.mro():
            if c.owner is not None and id(c) in c.owner.deferred:
                c.owner.complete_class(c)
            values.extend(c.instance_attrs.get(attr, ()))
            mutated = mutated or attr in c.mutated
        if not values:
            for c in cls.mro():
                if attr in c.attrs:
                    value = c.attrs[attr]
                    if isinstance(value, Function) and value.cls is not None:
                        return value
                    values.append(value)
                    break
        if not values:
            return Unknown(node, "an attribute")
        value = values[0] if len(values) == 1 else Choice(tuple(values), node)
        if mutated:
            opened: list[Value] = []
            for v in flatten(value):
                if isinstance(v, Mapping):
                    opened.append(_opened(v))
                elif isinstance(v, BnbConfig):
                    opened.append(replace(v, options=_opened(v.options)))
                else:
                    opened.append(v)
            value = opened[0] if len(opened) == 1 else Choice(tuple(opened), node)
        return value

    def call_function(self, fn: Function, node: ast.Call, env: Env) -> Value:
        """A call of a function of the project: its returns, and, when some argument is known,
        a walk of its body with them (so loads inside see what this call passes)."""
        owner = fn.owner if fn.owner is not None else self
        # Up to a ``*args`` splat (after it, positions are unknown): the keywords as any call
        # receives them, and the positional values.
        every = call_arguments(node)
        star = next((i for i, a in enumerate(every) if isinstance(a, ast.Starred)), len(every))
        before = every[:star]
        args = [self.eval(a, env) for a in before if not isinstance(a, ast.keyword)]
        passed = self.mapping_from_args(before, node, env)
        kwargs = dict(passed.entries)
        exact = passed.complete and star == len(every)
        bound_self = None
        if isinstance(node.func, ast.Attribute) and fn.cls is not None:
            receiver = self.eval(node.func.value, env)
            if isinstance(receiver, Instance):
                bound_self = receiver
        returns: list[Value] | None = None
        if any(_informative(v) for v in (*args, *(e.value for e in kwargs.values()))):
            name = fn.node.name
            hop = Hop(name, node, self)
            returns = owner.run_specialized(
                fn, args if exact or args else args, kwargs, hop, self.sink, bound_self, exact
            )
        if returns is None:
            returns = owner.run_function(fn.node, owner.def_envs.get(id(fn.node), env))
        if not returns:
            return NONE
        return returns[0] if len(returns) == 1 else Choice(tuple(returns), node)

    def call(self, node: ast.Call, env: Env) -> Value:
        site = self.sites.get(id(node))
        if site is not None:
            if site.api == "trl" or site.lazy:
                return Unknown(node, "not a model yet")
            return LoadResult(site, node)
        func = self.eval(node.func, env)
        name = qualname(func)
        if name in BNB_CONFIG_NAMES:
            config = self.configs.get(id(node))
            if config is None:
                options = self.mapping_from_args(node.keywords, node, env)
                if any(not isinstance(a, ast.Starred) for a in node.args):
                    # BitsAndBytesConfig(True): a positional load_in_8bit, not in ``options``.
                    options = Mapping(options.entries, node, complete=False)
                config = self.configs[id(node)] = BnbConfig(options, node, owner=self)
            return config
        if name is not None and name.split(".")[0] == "trl" and name.endswith("Config"):
            options = self.mapping_from_args(node.keywords, node, env)
            entry = options.entries.get("model_init_kwargs")
            return TrlConfig(entry.value if entry is not None else None, node)
        if name is not None and _other_quant_config(name):
            return OtherConfig(name, node)
        if name == "dict":
            mapping = self.mapping_from_args(
                [*node.args, *node.keywords], node, env, positional=True
            )
            kind = mapping.entries.get("type")
            if kind is not None and qualname(kind.value) in BNB_CONFIG_NAMES:
                # mmengine's lazy config (xtuner): the registry calls BitsAndBytesConfig(**rest)
                config = self.configs.get(id(node))
                if config is None:
                    rest = {k: e for k, e in mapping.entries.items() if k != "type"}
                    options = Mapping(rest, node, mapping.complete)
                    config = self.configs[id(node)] = BnbConfig(options, node, owner=self)
                return config
            return self.as_config(mapping)
        if isinstance(func, Function):
            return self.call_function(func, node, env)
        if isinstance(func, ClassValue) and not func.external_bases():
            return Instance(func, node)
        if isinstance(node.func, ast.Attribute) and node.func.attr in SELF_RETURNING:
            receiver = self.eval(node.func.value, env)
            if isinstance(receiver, LoadResult):
                return receiver
        return Unknown(node)

    def dict_literal(self, node: ast.Dict, env: Env) -> Value:
        entries: dict[str, Entry] = {}
        complete = True
        for element in dict_items(node):
            if element.key is None:  # **splat
                inner = self.as_mapping(self.eval(element.value, env))
                if inner is None or not inner.complete:
                    entries = _opened(Mapping(entries, node)).entries
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
                continue
            key = self.eval(element.key, env)
            if isinstance(key, Literal) and isinstance(key.value, str):
                entries[key.value] = Entry(self.eval(element.value, env), element, node)
            else:
                complete = False
        return self.as_config(Mapping(entries, node, complete))

    def as_config(self, mapping: Mapping) -> Value:
        """A dict with bitsandbytes keys is a dict config; anything else a plain mapping."""
        node = mapping.node
        if (
            isinstance(node, (ast.Call, ast.Dict))
            and any(k in mapping.entries for k in ("load_in_4bit", "load_in_8bit"))
            and not any(k in mapping.entries for k in ("quantization_config", "device_map"))
        ):
            config = self.configs.get(id(node))
            if config is None or config.options is not mapping:
                config = self.configs[id(node)] = BnbConfig(mapping, node, True, owner=self)
            return config
        return mapping

    def as_mapping(self, value: Value) -> Mapping | None:
        if isinstance(value, Mapping):
            return value
        if isinstance(value, BnbConfig):
            return value.options
        if isinstance(value, Choice):
            # Branch joins share their options: merge each choice once.
            cached = self.merged.get(id(value))
            if cached is not None and cached[0] is value:
                return cached[1]
            merged = self.merge_choice(value)
            self.merged[id(value)] = (value, merged)
            return merged
        return None

    def merge_choice(self, value: Choice) -> Mapping | None:
        """A mapping that is one of several: keys differing between options become choices."""
        options = [self.as_mapping(o) for o in value.options]
        if any(o is None for o in options):
            return None
        return _merge_mappings([o for o in options if o is not None])

    def lazy_site(self, call: ast.Call, env: Env) -> LoadSite | None:
        """``dict(type=AutoModelForCausalLM.from_pretrained, ...)``: an mmengine lazy config
        (xtuner) whose registry calls ``type(**rest)``, a load with the other keywords."""
        kind = next((k for k in call.keywords if k.arg == "type"), None)
        if kind is None or not (
            isinstance(kind.value, ast.Attribute) and kind.value.attr == "from_pretrained"
        ):
            return None
        receiver = self.eval(kind.value.value, env)
        name = qualname(receiver)
        if name is None or _foreign(name) or not _loader_name(name):
            return None
        mapping = self.mapping_from_args(call.keywords, call, env)
        rest = {k: e for k, e in mapping.entries.items() if k != "type"}
        site = LoadSite(
            call, "from_pretrained", name, Mapping(rest, call, mapping.complete), self.scopes[-1]
        )
        site.lazy = True
        return site

    def trainer_site(self, call: ast.Call, env: Env) -> LoadSite | None:
        """``SFTTrainer(model="id", args=SFTConfig(model_init_kwargs={...}))``: TRL loads the
        model itself, with those keywords (TRL 1.x ``create_model_from_path``)."""
        positional = [a for a in call.args if not isinstance(a, ast.Starred)]
        named = {k.arg: k.value for k in call.keywords if k.arg is not None}
        model_arg = named.get("model") or (positional[0] if positional else None)
        args_arg = named.get("args") or (positional[1] if len(positional) > 1 else None)
        if model_arg is None or args_arg is None:
            return None
        model = self.eval(model_arg, env)
        config = self.eval(args_arg, env)
        if not (isinstance(model, Literal) and isinstance(model.value, str)):
            return None  # an instantiated model: model_init_kwargs are not used
        if not isinstance(config, TrlConfig) or config.model_init_kwargs is None:
            return None
        kwargs = self.as_mapping(config.model_init_kwargs)
        if kwargs is None:
            return None
        receiver = "transformers.AutoModelForCausalLM"
        return LoadSite(call, "trl", receiver, kwargs, self.scopes[-1])

    def kwargs_alternatives(self, call: ast.Call, kwargs: Mapping, env: Env) -> list[Mapping]:
        """The keywords of a call, one mapping per path, when what it receives was written
        differently on the branches of an ``if`` (a ``**kwargs`` dict, a config variable).
        Values joined by the same branches are picked together: a dict and a config set in
        the same ``elif`` reach the load together, never one without the other. Empty when
        there is one path."""
        joins: dict[int, int] = {}
        values: list[tuple[ast.keyword, Value]] = []
        for arg in call.keywords:
            if arg.arg is not None:
                entry = kwargs.entries.get(arg.arg)
                if entry is None or entry.node is not arg:
                    return []  # overridden by a later splat: keep the merged view
                values.append((arg, entry.value))
            else:  # **splat
                if not isinstance(arg.value, ast.Name):
                    return []  # evaluating it again could have effects: merged view
                values.append((arg, self.eval(arg.value, env)))
            _collect_joins(values[-1][1], joins, 0)
        if not joins:
            return []
        paths = 1
        for n in joins.values():
            paths *= n
        if paths > MAX_PATHS:
            return []
        order = sorted(joins)
        seen: set[tuple[int, ...]] = set()
        out: list[Mapping] = []
        for picks in itertools.product(*(range(joins[j]) for j in order)):
            chosen = dict(zip(order, picks))
            entries: dict[str, Entry] = {}
            complete = True
            for arg, value in values:
                selected = _select(value, chosen, 0)
                if arg.arg is not None:
                    entries[arg.arg] = Entry(selected, arg, call)
                    continue
                inner = self.as_mapping(selected)
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
            key = tuple(sorted(id(e.value) for e in entries.values())) + (complete,)
            if key in seen:
                continue
            seen.add(key)
            out.append(Mapping(entries, call, complete))
        if len(out) <= 1:
            return []
        if len(out) > MAX_ALTERNATIVES:
            return self.group_by_keys(out, call)
        return out

    def group_by_keys(self, mappings: list[Mapping], call: ast.Call) -> list[Mapping]:
        """Many paths: one mapping per set of keys, values that differ joined into choices."""
        groups: dict[tuple[frozenset[str], bool], list[Mapping]] = {}
        for m in mappings:
            groups.setdefault((frozenset(m.entries), m.complete), []).append(m)
        if len(groups) > MAX_ALTERNATIVES:
            return []
        out = []
        for group in groups.values():
            merged = group[0] if len(group) == 1 else self.merge_choice(Choice(tuple(group)))
            if merged is None:
                return []
            out.append(Mapping(merged.entries, call, merged.complete))
        return out

    def mapping_from_args(
        self, args: Sequence[Argument], node: ast.Call, env: Env, positional: bool = False
    ) -> Mapping:
        """The keywords a call receives, ``**splats`` merged in order: ``args`` are the call's
        arguments in source order (``call.keywords`` when positional ones do not matter).

        ``positional``: positional arguments are mappings too (``dict(m, k=v)``, ``d.update(m)``).
        """
        entries: dict[str, Entry] = {}
        complete = True
        for arg in args:
            if isinstance(arg, ast.keyword):
                if arg.arg is not None:
                    entries[arg.arg] = Entry(self.eval(arg.value, env), arg, node)
                    continue
                inner = self.as_mapping(self.eval(arg.value, env))  # **splat
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
            elif positional and not isinstance(arg, ast.Starred):
                inner = self.as_mapping(self.eval(arg, env))

                if inner is None or not inner.complete:
                    entries = _opened(Mapping(entries, node)).entries
                if inner is None:
                    complete = False
                else:
                    entries.update(inner.entries)
                    complete = complete and inner.complete
        return Mapping(entries, node, complete)


def _argument_value(arg: Argument) -> ast.expr:
    """What an argument (or a list element) reads: a keyword's or a ``*starred``'s value."""
    if isinstance(arg, (ast.keyword, ast.Starred)):
        return arg.value
    return arg


def _subscript_key(target: ast.Subscript) -> str | None:
    """``"k"`` of ``name["k"]``."""
    return string_value(target.slice)


# A value that is one of more than this many alternatives (a dict changed by many ``if``s:
# 2**n paths) is merged into one, keys that differ between paths becoming choices, as an
# analysis that is not path-sensitive sees it.
MAX_CHOICE_LEAVES = 32


def _bounded(choice: Choice) -> Value:
    leaves = flatten(choice)
    if len(leaves) <= MAX_CHOICE_LEAVES:
        return choice
    unique: list[Value] = []
    for v in leaves:
        if not any(v is u for u in unique):
            unique.append(v)
    if all(isinstance(v, Mapping) for v in unique):
        return _merge_mappings([v for v in unique if isinstance(v, Mapping)], MAYBE_ABSENT)
    return Choice(tuple(unique[: MAX_CHOICE_LEAVES * 2]), choice.node)


def _merge_mappings(maps: list[Mapping], absent: Value | None = None) -> Mapping:
    """One mapping standing for several: a key some lack, or whose values differ, becomes a
    choice (with ``absent``, default None, where it is missing)."""
    entries: dict[str, Entry] = {}
    for key in dict.fromkeys(k for m in maps for k in m.entries):
        found = [m.entries.get(key) for m in maps]
        first = found[0]
        if first is not None and all(f is first for f in found):
            entries[key] = first
        else:
            node = next(f.node for f in found if f is not None)
            values: list[Value] = []
            for f in found:
                v = (absent or NONE) if f is None else f.value
                if not any(v is u for u in values):
                    values.append(v)
            entries[key] = Entry(Choice(tuple(values)), node)
    return Mapping(entries, maps[0].node, all(m.complete for m in maps))


def _within(inner: ast.AST, outer: ast.AST) -> bool:
    """Whether ``inner`` is ``outer`` or one of its descendants (by identity)."""
    return any(node is inner for node in ast.walk(outer))


def _collect_joins(
    value: Value, joins: dict[int, int], depth: int, seen: set[int] | None = None
) -> None:
    """The branch joins a value depends on, with their number of branches."""
    if seen is None:
        seen = set()
    if depth > 12 or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, Choice):
        if value.join is not None:
            joins[value.join] = len(value.branches)
        elif all(isinstance(o, Mapping) for o in value.options):
            # dicts one of which a narrowed name holds: each is a path of its own
            joins[-id(value)] = len(value.options)
        for option in value.options:
            _collect_joins(option, joins, depth + 1, seen)
    elif isinstance(value, Mapping):
        for entry in value.entries.values():
            _collect_joins(entry.value, joins, depth + 1, seen)
    elif isinstance(value, BnbConfig):
        _collect_joins(value.options, joins, depth + 1, seen)


def _select(value: Value, picks: dict[int, int], depth: int) -> Value:
    """The value on the path that takes branch ``picks[j]`` at each join ``j``; the same
    object when the path does not change it (identity is what the rules compare)."""
    if depth > 12:
        return value
    if isinstance(value, Choice):
        if value.join is not None and value.join in picks:
            return _select(value.options[value.branches[picks[value.join]]], picks, depth + 1)
        if value.join is None and -id(value) in picks:
            return _select(value.options[picks[-id(value)]], picks, depth + 1)
        options = tuple(_select(o, picks, depth + 1) for o in value.options)
        if all(a is b for a, b in zip(options, value.options)):
            return value
        return Choice(options, value.node)
    if isinstance(value, Mapping):
        entries = {}
        changed = False
        for k, e in value.entries.items():
            v = _select(e.value, picks, depth + 1)
            changed = changed or v is not e.value
            entries[k] = e if v is e.value else Entry(v, e.node, e.container)
        return Mapping(entries, value.node, value.complete) if changed else value
    if isinstance(value, BnbConfig):
        selected = _select(value.options, picks, depth + 1)
        if selected is value.options or not isinstance(selected, Mapping):
            return value
        return replace(value, options=selected)
    return value


def _each_mapping(
    value: Value | None,
    change: Callable[[Mapping], Mapping],
    dict_configs: bool = False,
    memo: dict[int, Value | None] | None = None,
) -> Value | None:
    """``value`` with ``change`` applied to its mapping (a dict, a config's options), or to
    each option's when it is one of several (a dict written on an earlier branch): a mutation
    after an ``if`` changes whichever dict the path holds. None when there is none. A value
    shared by several branches is changed once (``memo``), keeping the choices small."""
    if memo is None:
        memo = {}
    key = id(value)
    if key in memo:
        return memo[key]
    memo[key] = result = _each_mapping_once(value, change, dict_configs, memo)
    return result


def _each_mapping_once(
    value: Value | None,
    change: Callable[[Mapping], Mapping],
    dict_configs: bool,
    memo: dict[int, Value | None],
) -> Value | None:
    if isinstance(value, Mapping):
        return change(value)
    if isinstance(value, BnbConfig):
        if dict_configs and not value.is_dict:
            return None  # cfg["k"] = v on a BitsAndBytesConfig object: not a mapping
        return replace(value, options=change(value.options))
    if isinstance(value, Choice):
        options = [_each_mapping(o, change, dict_configs, memo) for o in value.options]
        if all(o is None for o in options):
            return None
        return Choice(
            tuple(o if n is None else n for o, n in zip(value.options, options)),
            value.node,
            value.join,
            value.branches,
        )
    return None


def _opened(mapping: Mapping) -> Mapping:
    """The mapping after an unknown merge: every key stays (a merge cannot remove one), any
    value may have been replaced, and other keys may have been added."""
    entries = {
        k: e
        if isinstance(e.value, Overridden)
        else Entry(Overridden(e.node, "may be overridden", e.value), e.node, e.container)
        for k, e in mapping.entries.items()
    }
    return Mapping(entries, mapping.node, complete=False)


def _informative(value: Value) -> bool:
    """Whether an argument tells the callee more than "unknown"."""
    return any(
        not isinstance(v, (Unknown, Symbol, Function, ClassValue, Instance)) for v in flatten(value)
    )


def _narrow_key(env: Env, name: str, key: str, present: bool) -> None:
    """Keep the dicts ``name`` may be that have (or lack) ``key``."""
    value = env.lookup(name)
    if not isinstance(value, Choice):
        return
    options = flatten(value)
    kept = [
        o
        for o in options
        if not isinstance(o, Mapping)
        or ((key in o.entries or not o.complete) if present else key not in o.entries)
    ]
    if kept and len(kept) < len(options):
        env.vars[name] = kept[0] if len(kept) == 1 else Choice(tuple(kept), value.node)


def _narrow_to(env: Env, name: str, none: bool) -> None:
    """Keep only the None (``none``) or the non-None options of ``name`` in ``env``, when both
    are possible."""
    value = env.lookup(name)
    if value is None:
        return
    options = flatten(value)
    if not any(is_none(v) or isinstance(v, Unknown) for v in options):
        return
    if none:
        env.vars[name] = NONE
        return
    rest = [v for v in options if not is_none(v)]
    if rest and len(rest) < len(options):
        env.vars[name] = rest[0] if len(rest) == 1 else Choice(tuple(rest))


def _loader_name(name: str) -> bool:
    """Whether a class of this qualified name may be transformers' loader: a transformers or
    PEFT class, or a bare name the analysis could not trace (defined elsewhere, star-imported).
    A class imported from any other package, or from a project module that does not define
    it as a transformers subclass, is not: its from_pretrained is its own."""
    root = name.split(".")[0]
    return "." not in name or root in LOADER_ROOTS


def _variants(site: LoadSite) -> list[LoadSite]:
    """One load site per path: per mapping a ``**kwargs`` may be, and per bitsandbytes config
    that may reach it (``int4 -> cfg4, int8 -> cfg8``); each is a load on some path, so each
    is checked on its own."""
    if site.alternatives:
        out = []
        for kwargs in site.alternatives:
            for variant in _variants(replace(site, kwargs=kwargs, alternatives=[], configs=[])):
                if variant.quantization is not None:
                    variant.quantization = replace(variant.quantization, conditional=True)
                out.append(variant)
        return out
    entry = site.kwargs.entries.get("quantization_config")
    if entry is not None:
        configs: list[BnbConfig] = []
        for v in flatten(entry.value):
            if isinstance(v, BnbConfig) and not any(v is c for c in configs):
                configs.append(v)
        if len(configs) > 1:
            out = []
            for config in configs:
                kwargs = site.kwargs.with_entry(
                    "quantization_config", Entry(config, entry.node, entry.container)
                )
                variant = replace(site, kwargs=kwargs, configs=[])
                resolve_quantization(variant)
                if variant.quantization is not None:
                    variant.quantization = replace(variant.quantization, conditional=True)
                out.append(variant)
            return out
    resolve_quantization(site)
    return [site]


def _init_rank(node: ast.AST) -> int:
    name = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else ""
    return INIT_METHODS.index(name) if name in INIT_METHODS else len(INIT_METHODS)


def _is_static(node: FunctionNode) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)


def _foreign(name: str) -> bool:
    parts = name.split(".")
    if parts[0] in FOREIGN_ROOTS or parts[-1] in FOREIGN_NAMES:
        return True
    return parts[-1].endswith(NON_MODEL_SUFFIXES)


def _other_quant_config(name: str) -> bool:
    """Quantization configs that are not transformers' bitsandbytes one."""
    last = name.split(".")[-1]
    if name.split(".")[0] == "diffusers":
        return last.endswith("Config")
    return last.endswith("Config") and (
        "Quant" in last
        or last
        in {
            "GPTQConfig",
            "AwqConfig",
            "AqlmConfig",
            "EetqConfig",
            "HqqConfig",
            "TorchAoConfig",
            "BitNetConfig",
            "HiggsConfig",
            "VptqConfig",
            "SpQRConfig",
            "FbgemmFp8Config",
            "CompressedTensorsConfig",
            "FineGrainedFP8Config",
        }
    )


def _interesting_names(env: Env) -> frozenset[str]:
    """Module-level names a function body may use to reach a model, a config or a kwargs dict."""
    names = set()
    for name, value in env.vars.items():
        for v in flatten(value):
            if isinstance(v, (LoadResult, BnbConfig, OtherConfig, Mapping)):
                names.add(name)
            elif isinstance(v, Symbol) and v.qualname.rsplit(".", 1)[-1] in (
                "BitsAndBytesConfig",
                "pipeline",
            ):
                names.add(name)
    return frozenset(names)


def build_model(
    tree: ast.Module,
    source: str,
    project: Project | None = None,
    path: str | None = None,
) -> ModuleModel:
    """The analysis model of a module: ``tree`` is the stdlib AST of ``source``
    (``bnblint.parse.parse_ast``), which every node of the model belongs to; its index lets the
    walk skip function bodies that cannot matter. ``project`` resolves imports of project
    modules."""
    builder = ModelBuilder(tree, source, FunctionIndex(tree), project, path)

    if project is not None and path is not None:
        project.register(path, builder, source)
    model = builder.build()
    model.builder = builder
    return model
