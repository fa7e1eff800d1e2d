//! Rebuild the engine's run state from stored rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::{
    ActionInfo, IncidentMeta, IncidentStatus, Mode, Policy, RunState, StepState, StepStatus,
    TaskState, TaskStatus,
};
use crate::playbook::Playbook;
use crate::store::StoredRun;

pub fn restore(
    run: StoredRun,
    playbook: Arc<Playbook>,
    policy: Policy,
    actions: BTreeMap<String, ActionInfo>,
) -> Result<RunState, String> {
    let inc = run.incident;
    let meta = IncidentMeta {
        mode: Mode::parse(&inc.mode).ok_or_else(|| format!("unknown mode `{}`", inc.mode))?,
        status: IncidentStatus::parse(&inc.status)
            .ok_or_else(|| format!("unknown status `{}`", inc.status))?,
        id: inc.id,
        params: inc.params,
        auto_approve: inc.auto_approve,
        started_by: inc.started_by,
        created_at: inc.created_at,
        finished_at: inc.finished_at,
    };
    let mut state = RunState::new(meta, playbook, policy, actions);
    state.dirty = Default::default();
    for s in run.steps {
        let Some(st) = state.steps.get_mut(&s.step_id) else {
            return Err(format!(
                "stored step `{}` is not in the pinned playbook",
                s.step_id
            ));
        };
        *st = StepState {
            status: StepStatus::parse(&s.status)
                .ok_or_else(|| format!("unknown step status `{}`", s.status))?,
            fanout: s.fanout,
            outputs: s.outputs,
            error: s.error,
            started_at: s.started_at,
            finished_at: s.finished_at,
            approval_deadline: s.approval_deadline,
            approvals: Vec::new(),
            tasks: Vec::new(),
        };
    }
    for t in run.tasks {
        let Some(st) = state.steps.get_mut(&t.step_id) else {
            return Err(format!("stored task of unknown step `{}`", t.step_id));
        };
        st.tasks.push(TaskState {
            index: t.item_index,
            item: t.item,
            status: TaskStatus::parse(&t.status)
                .ok_or_else(|| format!("unknown task status `{}`", t.status))?,
            attempt: t.attempt,
            inputs: t.inputs,
            idem_key: t.idem_key,
            outputs: t.outputs,
            error: t.error,
            next_run_at: t.next_run_at,
            needs_probe: t.needs_probe,
            reprobe: false,
            human: t.human,
            started_at: t.started_at,
            finished_at: t.finished_at,
        });
    }
    for a in run.approvals {
        if let Some(st) = state.steps.get_mut(&a.step_id) {
            st.approvals.push(a.approval);
        }
    }
    Ok(state)
}
