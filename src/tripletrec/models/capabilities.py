"""What an estimator can do, declared in one value: :class:`Capabilities`.

Every estimator answers :meth:`~tripletrec.models.base.RecommenderBase.capabilities` with
one of these; the command line, tuning, retrieval, the service and composite estimators ask
it instead of testing an estimator's class or its private attributes, and the contract suite
(:mod:`tripletrec.testing`) checks that each declared capability works and that each
undeclared one is refused with one :class:`~tripletrec.exceptions.TripletrecError` line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from tripletrec.exceptions import TripletrecError


@dataclass(frozen=True)
class Capabilities:
    """What one estimator (with its hyper-parameters) supports beyond fit / score / recommend.

    Attributes
    ----------
    history_scoring : bool
        ``recommend_from_history``, ``score_from_history`` and ``score_histories``: users
        the model has never seen, from their item histories.
    vector_space : bool
        ``vector_space()`` gives user and item vectors whose dot products rank as the
        model does, so an approximate index (``tripletrec index``) can search them.
    explain : bool
        ``explain`` splits a score over the user's history.
    side_features : bool
        ``fit(user_features=..., item_features=...)`` and ``add_items``.
    epochs : bool
        ``fit`` trains in epochs: ``fit(validation=..., on_epoch_end=...)`` follows
        validation metrics and stops early.
    checkpoints : bool
        ``fit(checkpoint_dir=...)`` writes checkpoints a killed run resumes from.
    fit_partial : bool
        ``fit_partial`` trains a fitted model further on new data.
    data_parallel : bool
        Trains data-parallel under ``torchrun``, with dense or sparse gradients.
    tuning : bool
        ``tripletrec tune`` (:mod:`tripletrec.tuning`) has a search space for it.
    """

    history_scoring: bool = False
    vector_space: bool = False
    explain: bool = False
    side_features: bool = False
    epochs: bool = False
    checkpoints: bool = False
    fit_partial: bool = False
    data_parallel: bool = False
    tuning: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every capability, in declaration order."""
        return tuple(f.name for f in fields(cls))

    def declared(self) -> tuple[str, ...]:
        """The capabilities this value declares."""
        return tuple(name for name in self.names() if getattr(self, name))

    def require(self, name: str, estimator: str, needed_for: str) -> None:
        """Raise a one-line :class:`TripletrecError` unless capability ``name`` is declared.

        Parameters
        ----------
        name : str
            A field of this class.
        estimator : str
            The estimator's class name, for the message.
        needed_for : str
            What was asked, for the message ("--checkpoint-every", "recommend_from_history").
        """
        if name not in self.names():
            raise ValueError(f"no capability named {name!r}")
        if not getattr(self, name):
            declared = ", ".join(self.declared()) or "none"
            raise TripletrecError(
                f"{needed_for}: {estimator} has no {name.replace('_', ' ')} capability "
                f"(it declares: {declared})"
            )
