-- A task handed to a person (e.g. a PyPI yank in the web UI). While such a task runs, it is
-- verifying the person's "done" against the registry: "not done" fails it.
ALTER TABLE tasks ADD COLUMN human BOOLEAN NOT NULL DEFAULT false;
