"""The binder's visitors, one module per family of operations (as ibis dispatches one visitor per
operation family); ``assay.kql.binder.Binder`` composes them."""
