//! Row → record mappings shared by the SQLite and Postgres stores. Both select the same
//! columns; only the row type differs, so each store reads through [`Cols`].

use serde_json::Value;
use sqlx::Row;

use super::{
    ApprovalRecord, InboxItem, IncidentRecord, Result, SlackThread, StepRecord, StoreError,
    TaskRecord,
};
use crate::engine::{Approval, Decision};
use crate::timeline;

/// Typed column access over either backend's row.
pub(super) trait Cols {
    fn text(&self, c: &str) -> Result<String>;
    fn opt_text(&self, c: &str) -> Result<Option<String>>;
    fn int(&self, c: &str) -> Result<i64>;
    fn opt_int(&self, c: &str) -> Result<Option<i64>>;
    fn flag(&self, c: &str) -> Result<bool>;

    fn json(&self, table: &'static str, c: &str) -> Result<Value> {
        serde_json::from_str(&self.text(c)?).map_err(|e| StoreError::Corrupt {
            table,
            detail: e.to_string(),
        })
    }

    fn small(&self, table: &'static str, c: &str) -> Result<u32> {
        let v = self.int(c)?;
        u32::try_from(v).map_err(|e| StoreError::Corrupt {
            table,
            detail: format!("{c} = {v}: {e}"),
        })
    }
}

macro_rules! cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, c: &str) -> Result<String> {
                Ok(self.try_get(c)?)
            }
            fn opt_text(&self, c: &str) -> Result<Option<String>> {
                Ok(self.try_get(c)?)
            }
            fn int(&self, c: &str) -> Result<i64> {
                Ok(self.try_get(c)?)
            }
            fn opt_int(&self, c: &str) -> Result<Option<i64>> {
                Ok(self.try_get(c)?)
            }
            fn flag(&self, c: &str) -> Result<bool> {
                Ok(self.try_get(c)?)
            }
        }
    };
}

cols!(sqlx::sqlite::SqliteRow);
cols!(sqlx::postgres::PgRow);

/// Columns of [`incident`], from `incidents` joined with `timeline_heads h`.
pub(super) const INCIDENT_COLS: &str = "id, playbook_name, playbook_sha256, playbook_source, playbook_file, params_json, mode, status, auto_approve, started_by, created_at, updated_at, finished_at, h.head_seq, h.head_hash";
pub(super) const INCIDENT_FROM: &str =
    "incidents JOIN timeline_heads h ON h.incident_id = incidents.id";
pub(super) const STEP_COLS: &str =
    "step_id, status, fanout, outputs_json, error, started_at, finished_at, approval_deadline";
pub(super) const TASK_COLS: &str = "step_id, item_index, item_json, status, attempt, inputs_json, idem_key, outputs_json, error, next_run_at, needs_probe, started_at, finished_at, human";
pub(super) const APPROVAL_COLS: &str = "step_id, actor, decision, target, reason, at";
pub(super) const EVENT_COLS: &str =
    "incident_id, seq, at, actor, kind, step_id, item_index, summary, data_json, prev_hash, hash";
pub(super) const THREAD_COLS: &str =
    "incident_id, channel, thread_ts, last_seq, last_render, started_by, response_url, done";

pub(super) fn incident(r: &impl Cols) -> Result<IncidentRecord> {
    Ok(IncidentRecord {
        id: r.text("id")?,
        playbook_name: r.text("playbook_name")?,
        playbook_sha256: r.text("playbook_sha256")?,
        playbook_source: r.text("playbook_source")?,
        playbook_file: r.text("playbook_file")?,
        params: r.json("incidents", "params_json")?,
        mode: r.text("mode")?,
        status: r.text("status")?,
        auto_approve: r.flag("auto_approve")?,
        started_by: r.text("started_by")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
        finished_at: r.opt_int("finished_at")?,
        head_seq: r.int("head_seq")?,
        head_hash: r.text("head_hash")?,
    })
}

pub(super) fn step(r: &impl Cols) -> Result<StepRecord> {
    Ok(StepRecord {
        step_id: r.text("step_id")?,
        status: r.text("status")?,
        fanout: r.flag("fanout")?,
        outputs: r.json("steps", "outputs_json")?,
        error: r.opt_text("error")?,
        started_at: r.opt_int("started_at")?,
        finished_at: r.opt_int("finished_at")?,
        approval_deadline: r.opt_int("approval_deadline")?,
    })
}

pub(super) fn task(r: &impl Cols) -> Result<TaskRecord> {
    Ok(TaskRecord {
        step_id: r.text("step_id")?,
        item_index: r.small("tasks", "item_index")?,
        item: r.json("tasks", "item_json")?,
        status: r.text("status")?,
        attempt: r.small("tasks", "attempt")?,
        inputs: r.json("tasks", "inputs_json")?,
        idem_key: r.text("idem_key")?,
        outputs: r.json("tasks", "outputs_json")?,
        error: r.opt_text("error")?,
        next_run_at: r.opt_int("next_run_at")?,
        needs_probe: r.flag("needs_probe")?,
        human: r.flag("human")?,
        started_at: r.opt_int("started_at")?,
        finished_at: r.opt_int("finished_at")?,
    })
}

pub(super) fn approval(r: &impl Cols) -> Result<ApprovalRecord> {
    let d = r.text("decision")?;
    Ok(ApprovalRecord {
        step_id: r.text("step_id")?,
        approval: Approval {
            actor: r.text("actor")?,
            decision: Decision::parse(&d).ok_or_else(|| StoreError::Corrupt {
                table: "approvals",
                detail: d.clone(),
            })?,
            target: r.text("target")?,
            reason: r.text("reason")?,
            at: r.int("at")?,
        },
    })
}

pub(super) fn event(r: &impl Cols) -> Result<timeline::Event> {
    Ok(timeline::Event {
        incident: r.text("incident_id")?,
        seq: r.int("seq")?,
        at: r.int("at")?,
        actor: r.text("actor")?,
        kind: r.text("kind")?,
        step: r.opt_text("step_id")?,
        index: r.opt_int("item_index")?.and_then(|i| u32::try_from(i).ok()),
        summary: r.text("summary")?,
        data_json: r.text("data_json")?,
        prev_hash: r.text("prev_hash")?,
        hash: r.text("hash")?,
    })
}

pub(super) fn inbox(r: &impl Cols) -> Result<InboxItem> {
    Ok(InboxItem {
        id: r.int("id")?,
        kind: r.text("kind")?,
        payload: r.json("inbox", "payload_json")?,
    })
}

pub(super) fn thread(r: &impl Cols) -> Result<SlackThread> {
    Ok(SlackThread {
        incident_id: r.text("incident_id")?,
        channel: r.text("channel")?,
        thread_ts: r.opt_text("thread_ts")?,
        last_seq: r.int("last_seq")?,
        last_render: r.text("last_render")?,
        started_by: r.text("started_by")?,
        response_url: r.opt_text("response_url")?,
        done: r.flag("done")?,
    })
}
