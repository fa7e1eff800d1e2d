//! Steps: ids, actions and their inputs, conditions, fan-out, retry, timeout, approval.

use super::*;

impl Cx<'_> {
    pub(super) fn steps(
        &mut self,
        node: &Node,
        params: &[ParamDef],
        catalog: &dyn ActionCatalog,
    ) -> Vec<StepDef> {
        let NodeKind::Seq(items) = &node.kind else {
            self.error(
                node.loc,
                format!("`steps` must be a list, found {}", node.type_name()),
                help("write each step as `- id: ...` under `steps:`"),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(node.loc, "`steps` is empty", help("add at least one step"));
            return Vec::new();
        }
        if items.len() > MAX_STEPS {
            self.error(
                node.loc,
                format!("too many steps ({}); the limit is {MAX_STEPS}", items.len()),
                help("split the playbook"),
            );
            return Vec::new();
        }
        // First pass: ids, so `needs` / `steps.X` can be checked in any order.
        let mut ids: HashMap<String, Loc> = HashMap::new();
        let mut steps = Vec::new();
        let mut infos = Vec::new();
        for item in items {
            if let Some((step, info)) = self.step(item, params, catalog, &mut ids) {
                steps.push(step);
                infos.push(info);
            }
        }
        self.check_graph(&steps, &infos, params);
        steps
    }

    pub(super) fn step(
        &mut self,
        node: &Node,
        params: &[ParamDef],
        catalog: &dyn ActionCatalog,
        ids: &mut HashMap<String, Loc>,
    ) -> Option<(StepDef, StepInfo)> {
        let entries = self.entries(node, "a step")?;
        let mut info = StepInfo {
            refs: Vec::new(),
            needs_locs: Vec::new(),
            has_for_each: entries.iter().any(|(k, _, _)| *k == "for_each"),
        };
        let mut step = StepDef {
            id: String::new(),
            name: None,
            uses: String::new(),
            with: Vec::new(),
            needs: Vec::new(),
            if_: None,
            for_each: None,
            concurrency: None,
            retry: RetryPolicy::default(),
            timeout_ms: None,
            continue_on_error: false,
            approval: None,
            gate_window_ms: None,
            loc: node.loc,
        };
        let mut uses_node = None;
        let mut with_node = None;
        let mut concurrency_loc = None;
        let mut gate_loc = None;
        for (key, knode, v) in &entries {
            match *key {
                "id" => match v.as_str() {
                    Some(id) if valid_step_id(id) => {
                        if let Some(first) = ids.get(id) {
                            self.error(
                                v.loc,
                                format!("duplicate step id `{id}`"),
                                help(format!("`{id}` is already used by the step at line {}; pick a unique id", first.line)),
                            );
                        } else {
                            ids.insert(id.to_string(), v.loc);
                        }
                        step.id = id.to_string();
                    }
                    _ => {
                        let shown = v
                            .as_str()
                            .map_or_else(|| v.type_name().to_string(), |s| format!("`{s}`"));
                        self.error(
                            v.loc,
                            format!("invalid step id {shown}"),
                            help("step ids use only lowercase letters, digits, `_` and `-`"),
                        );
                    }
                },
                "name" => step.name = self.string(v, "`name`"),
                "uses" => uses_node = Some(*v),
                "with" => with_node = Some((knode.loc, *v)),
                "needs" => match &v.kind {
                    NodeKind::Str(s) => {
                        step.needs.push(s.clone());
                        info.needs_locs.push(v.loc);
                    }
                    NodeKind::Seq(list) => {
                        for n in list {
                            if let Some(s) = self.string(n, "a `needs` entry") {
                                step.needs.push(s);
                                info.needs_locs.push(n.loc);
                            }
                        }
                    }
                    _ => {
                        self.error(
                            v.loc,
                            format!(
                                "`needs` must be a step id or a list of step ids, found {}",
                                v.type_name()
                            ),
                            None,
                        );
                    }
                },
                "if" => {
                    if let Some(t) = self.condition(v, &mut info.refs) {
                        step.if_ = Some(t)
                    }
                }
                "for_each" => {
                    if let Some(t) = self.value_template(v, &mut info.refs, true) {
                        self.check_for_each(v, &t, params);
                        step.for_each = Some(t);
                    }
                }
                "concurrency" => {
                    concurrency_loc = Some(knode.loc);
                    if let Some(c) = self.int_in(v, "`concurrency`", 1, 256) {
                        step.concurrency = Some(c)
                    }
                }
                "retry" => {
                    if let Some(r) = self.retry(v) {
                        step.retry = r
                    }
                }
                "timeout" => {
                    if let Some(ms) = self.duration(v, "`timeout`") {
                        step.timeout_ms = Some(ms)
                    }
                }
                "continue-on-error" => {
                    if let Some(b) = self.boolean(v, "`continue-on-error`") {
                        step.continue_on_error = b
                    }
                }
                "approval" => {
                    if let Some(a) = self.approval(v) {
                        step.approval = Some(a)
                    }
                }
                "gate" => {
                    gate_loc = Some(knode.loc);
                    step.gate_window_ms = self.gate(v);
                }
                other => {
                    self.unknown_key(other, knode.loc, "a step", STEP_KEYS);
                }
            }
        }
        if !entries.iter().any(|(k, _, _)| *k == "id") {
            self.error(
                node.loc,
                "step is missing `id`",
                help("add `id: my-step` (lowercase letters, digits, `_`, `-`)"),
            );
        }
        if let (Some(loc), None) = (concurrency_loc, &step.for_each) {
            self.error(
                loc,
                "`concurrency` is only valid together with `for_each`",
                help("remove `concurrency` or add `for_each`"),
            );
        }
        let spec = match uses_node {
            None => {
                self.error(
                    node.loc,
                    "step is missing `uses`",
                    help("add `uses: <action>`, e.g. `uses: npm.deprecate`"),
                );
                None
            }
            Some(u) => match self.string(u, "`uses`") {
                Some(name) => {
                    let spec = catalog.spec(&name).copied();
                    if spec.is_none() {
                        let names = catalog.names();
                        let near = closest_n(&name, names.iter().copied(), 3);
                        let h = if near.is_empty() {
                            format!("known actions: {}", names.join(", "))
                        } else {
                            format!(
                                "did you mean {}?",
                                near.iter()
                                    .map(|n| format!("`{n}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        };
                        self.error(u.loc, format!("unknown action `{name}`"), Some(h));
                    }
                    step.uses = name;
                    spec
                }
                None => None,
            },
        };
        let mut with_ok = true;
        if let Some((_, w)) = with_node {
            match self.with(w, spec.as_ref(), params, &mut info.refs) {
                Some(with) => step.with = with,
                None => {
                    with_ok = false;
                }
            }
        }
        if let Some(spec) = &spec {
            let given: HashSet<&str> = step.with.iter().map(|(k, _)| k.as_str()).collect();
            let missing: Vec<&str> = spec
                .inputs
                .iter()
                .filter(|i| i.required && !given.contains(i.name))
                .map(|i| i.name)
                .collect();
            // Skipped when `with` had errors: a misspelled key is already
            // reported with a suggestion, and "missing" would be noise.
            if !missing.is_empty() && with_ok {
                let at = with_node.map_or(node.loc, |(k, _)| k);
                for m in missing {
                    let h = spec
                        .inputs
                        .iter()
                        .find(|i| i.name == m)
                        .map(|i| format!("add `{m}:` under `with:` ({})", i.help));
                    self.error(
                        at,
                        format!("action `{}` requires input `{m}`", spec.name),
                        h,
                    );
                }
            }
            if let (Some(loc), false) = (gate_loc, spec.destructive) {
                self.error(
                    loc,
                    format!(
                        "`gate` applies only to destructive actions; `{}` deletes nothing",
                        spec.name
                    ),
                    help("remove `gate:`"),
                );
            }
            if spec.destructive && step.approval.is_none() {
                self.warn(
                    node.loc,
                    format!(
                        "action `{}` is destructive and the step has no `approval`",
                        spec.name
                    ),
                    help("add `approval: { count: 1, from: [group:NAME] }`"),
                );
            }
        }
        // Kept even with errors (the caller fails on any error anyway) so
        // that other steps' `needs` and `steps.X` checks don't cascade.
        Some((step, info))
    }

    /// `if:` takes `${{ expr }}` or a bare expression (GH semantics).
    pub(super) fn condition(&mut self, v: &Node, refs: &mut Vec<RefSite>) -> Option<Template> {
        let src = match &v.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Bool(b) => b.to_string(),
            _ => {
                self.error(
                    v.loc,
                    format!("`if` must be an expression, found {}", v.type_name()),
                    help("write e.g. `if: always()` or `if: ${{ failure() }}`"),
                );
                return None;
            }
        };
        if src.contains("${{") {
            match parse_template(&src) {
                Ok(t) if t.single_expr().is_some() => {
                    self.record_refs(v, &t.references(), 0, refs, false);
                    Some(t)
                }
                Ok(_) => {
                    self.error(
                        v.loc,
                        "`if` must be a single expression",
                        help("write the whole condition inside one ${{ }}"),
                    );
                    None
                }
                Err(e) => {
                    self.expr_error(v, &e, 0);
                    None
                }
            }
        } else {
            match Template::from_expr_source(&src) {
                Ok(t) => {
                    self.record_refs(v, &t.references(), BARE_PREFIX.len(), refs, false);
                    Some(t)
                }
                Err(e) => {
                    self.expr_error(v, &e, 0);
                    None
                }
            }
        }
    }

    pub(super) fn check_for_each(&mut self, v: &Node, t: &ValueTemplate, params: &[ParamDef]) {
        let bad = match t {
            ValueTemplate::List(_) => None,
            ValueTemplate::Template(tpl) => match tpl.single_expr() {
                None => Some("text".to_string()),
                Some(e) => match param_of(e).and_then(|n| params.iter().find(|p| p.name == n)) {
                    Some(p) if p.ty != ParamType::List => {
                        Some(format!("param `{}` of type {}", p.name, p.ty.name()))
                    }
                    _ => None,
                },
            },
            ValueTemplate::Literal(_) | ValueTemplate::Map(_) => Some(v.type_name().to_string()),
        };
        if let Some(found) = bad {
            self.error(
                v.loc,
                format!("`for_each` must be a list, found {found}"),
                help("use a YAML list or `${{ params.NAME }}` where NAME has type list"),
            );
        }
    }

    pub(super) fn with(
        &mut self,
        node: &Node,
        spec: Option<&ActionSpec>,
        params: &[ParamDef],
        refs: &mut Vec<RefSite>,
    ) -> Option<Vec<(String, ValueTemplate)>> {
        if matches!(node.kind, NodeKind::Null) {
            return Some(Vec::new());
        }
        let entries = self.entries(node, "`with`")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (key, knode, v) in entries {
            let input = spec.map(|s| s.inputs.iter().find(|i| i.name == key));
            if let (Some(spec), Some(None)) = (spec, input) {
                ok = false;
                let names: Vec<&str> = spec.inputs.iter().map(|i| i.name).collect();
                let h = match closest(key, names.iter().copied()) {
                    Some(c) => format!(
                        "did you mean `{c}`? `{}` accepts: {}",
                        spec.name,
                        names.join(", ")
                    ),
                    None if names.is_empty() => {
                        format!("`{}` takes no inputs; remove it", spec.name)
                    }
                    None => format!("`{}` accepts: {}", spec.name, names.join(", ")),
                };
                self.error(
                    knode.loc,
                    format!("unknown input `{key}` for action `{}`", spec.name),
                    Some(h),
                );
                continue;
            }
            let Some(vt) = self.value_template(v, refs, false) else {
                ok = false;
                continue;
            };
            if let Some(Some(input)) = input
                && let Some(found) = type_mismatch(input.ty, &vt, v, params)
            {
                ok = false;
                let quote = if input.ty == InputType::String
                    && matches!(
                        v.kind,
                        NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_)
                    ) {
                    format!("; quote it: \"{}\"", v.key_string())
                } else {
                    String::new()
                };
                self.error(
                    v.loc,
                    format!("input `{key}` expects a {}, found {found}", input.ty.name()),
                    help(format!("pass a {}{quote}", input.ty.name())),
                );
                continue;
            }
            out.push((key.to_string(), vt));
        }
        ok.then_some(out)
    }

    pub(super) fn retry(&mut self, node: &Node) -> Option<RetryPolicy> {
        let entries = self.entries(node, "`retry`")?;
        let mut r = RetryPolicy::default();
        let mut ok = true;
        let mut initial_loc = node.loc;
        for (key, knode, v) in entries {
            match key {
                "attempts" => match self.int_in(v, "`retry.attempts`", 1, 20) {
                    Some(a) => r.attempts = a,
                    None => ok = false,
                },
                "backoff" => match v.as_str() {
                    Some("exponential") => r.backoff = Backoff::Exponential,
                    Some("fixed") => r.backoff = Backoff::Fixed,
                    _ => {
                        ok = false;
                        self.error(
                            v.loc,
                            "`retry.backoff` must be `exponential` or `fixed`",
                            help("use `backoff: exponential` or `backoff: fixed`"),
                        );
                    }
                },
                "initial" => {
                    initial_loc = v.loc;
                    match self.duration(v, "`retry.initial`") {
                        Some(ms) => r.initial_ms = ms,
                        None => ok = false,
                    }
                }
                "max" => match self.duration(v, "`retry.max`") {
                    Some(ms) => r.max_ms = ms,
                    None => ok = false,
                },
                other => {
                    ok = false;
                    self.unknown_key(other, knode.loc, "`retry`", RETRY_KEYS);
                }
            }
        }
        if ok && r.initial_ms > r.max_ms {
            ok = false;
            self.error(
                initial_loc,
                format!(
                    "`retry.initial` ({}ms) is larger than `retry.max` ({}ms)",
                    r.initial_ms, r.max_ms
                ),
                help("make `initial` <= `max`"),
            );
        }
        ok.then_some(r)
    }

    /// `gate:` may only narrow the engine's deletion gate. Anything that would weaken it
    /// (a wider window, switching it off, self-approval, retention exceptions) is an error
    /// that says so: those belong to reviewed configuration, not to a playbook.
    pub(super) fn gate(&mut self, node: &Node) -> Option<i64> {
        let entries = self.entries(node, "`gate`")?;
        let mut window = None;
        for (key, knode, v) in entries {
            match key {
                "window" => {
                    if let Some(ms) = self.duration(v, "`gate.window`") {
                        let max = crate::engine::gate::MAX_WINDOW_MS;
                        if ms == 0 || ms as i64 > max {
                            self.error(
                                v.loc,
                                format!(
                                    "`gate.window` must be between 1s and 72h: a playbook can only make the deletion gate stricter{}",
                                    if ms as i64 > max { ", never widen its window" } else { "" }
                                ),
                                help("use a window of at most 72h, e.g. `window: 24h`"),
                            );
                        } else {
                            window = Some(ms as i64);
                        }
                    }
                }
                "enabled"
                | "disabled"
                | "skip"
                | "bypass"
                | "off"
                | "allow_self_approval"
                | "self_approval"
                | "retention"
                | "approvals"
                | "approvers"
                | "exempt" => {
                    self.error(
                        knode.loc,
                        format!(
                            "`gate.{key}` would weaken the deletion gate; a playbook can only make it stricter"
                        ),
                        help(
                            "the gate (window, approvers, retention) is set in Recall's configuration `[gate]`;                              a step may narrow `gate.window` or raise `approval.count`",
                        ),
                    );
                }
                other => self.unknown_key(other, knode.loc, "`gate`", GATE_KEYS),
            }
        }
        window
    }

    pub(super) fn approval(&mut self, node: &Node) -> Option<ApprovalSpec> {
        let entries = self.entries(node, "`approval`")?;
        let mut a = ApprovalSpec {
            count: 1,
            from: Vec::new(),
        };
        let mut ok = true;
        let mut from_seen = false;
        for (key, knode, v) in entries {
            match key {
                "count" => match self.int_in(v, "`approval.count`", 1, 100) {
                    Some(c) => a.count = c,
                    None => ok = false,
                },
                "from" => {
                    from_seen = true;
                    let items: Vec<&Node> = match &v.kind {
                        NodeKind::Seq(list) => list.iter().collect(),
                        NodeKind::Str(_) => vec![v],
                        _ => {
                            ok = false;
                            self.error(
                                v.loc,
                                "`approval.from` must be a list",
                                help("e.g. `from: [group:release-admins, user:alice]`"),
                            );
                            Vec::new()
                        }
                    };
                    if items.is_empty() && matches!(v.kind, NodeKind::Seq(_)) {
                        ok = false;
                        self.error(
                            v.loc,
                            "`approval.from` is empty",
                            help("list at least one `group:NAME` or `user:NAME`"),
                        );
                    }
                    for it in items {
                        match it.as_str() {
                            Some(s) if valid_approver(s) => a.from.push(s.to_string()),
                            _ => {
                                ok = false;
                                let shown = it.as_str().map_or_else(
                                    || it.type_name().to_string(),
                                    |s| format!("`{s}`"),
                                );
                                self.error(
                                    it.loc,
                                    format!("invalid approver {shown}"),
                                    help("approvers are `group:NAME` or `user:NAME`"),
                                );
                            }
                        }
                    }
                }
                other => {
                    ok = false;
                    self.unknown_key(other, knode.loc, "`approval`", APPROVAL_KEYS);
                }
            }
        }
        if !from_seen {
            ok = false;
            self.error(
                node.loc,
                "`approval` is missing `from`",
                help("add `from: [group:NAME]`"),
            );
        }
        ok.then_some(a)
    }
}
