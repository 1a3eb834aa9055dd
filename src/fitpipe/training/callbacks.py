"""What fitpipe adds around Keras' callbacks: which hooks listen, and the run's History."""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["callback_list", "history_of", "listens_per_batch", "set_steps"]

_BATCH_HOOKS = {
    "train": ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"),
    "test": ("on_test_batch_begin", "on_test_batch_end"),
    "predict": ("on_predict_batch_begin", "on_predict_batch_end"),
}
_OWN_CALLBACKS = (keras.callbacks.History, keras.callbacks.ProgbarLogger)


def callback_list(
    model: keras.Model, callbacks: Any, verbose: Any, epochs: int, steps: int | None, history: bool
) -> keras.callbacks.CallbackList:
    """The run's ``CallbackList``, with History and the progress bar added as Keras adds them."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    return keras.callbacks.CallbackList(
        callbacks,
        add_history=history,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )


def listens_per_batch(cbs: keras.callbacks.CallbackList, modes: tuple[str, ...]) -> bool:
    """Tells whether a callback (other than History and the progress bar) has batch hooks."""
    base = keras.callbacks.Callback
    for callback in cbs.callbacks:
        if isinstance(callback, _OWN_CALLBACKS):
            continue
        for mode in modes:
            for hook in _BATCH_HOOKS[mode]:
                own = vars(callback).get(hook) is not None
                if own or getattr(type(callback), hook, None) is not getattr(base, hook):
                    return True
    return False


def set_steps(cbs: keras.callbacks.CallbackList, steps: int | None) -> None:
    """Gives the callbacks (the progress bar) this epoch's number of steps."""
    params = getattr(cbs, "params", None)
    if isinstance(params, dict) and params.get("steps") != steps:
        cbs.set_params({**params, "steps": steps})


def history_of(cbs: keras.callbacks.CallbackList, model: keras.Model) -> keras.callbacks.History:
    """The History callback of the run."""
    for callback in cbs.callbacks:
        if isinstance(callback, keras.callbacks.History):
            return callback
    return model.history
