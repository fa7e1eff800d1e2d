//! The step graph: `needs` references and cycles, and what expressions may reference.

use super::*;

impl Cx<'_> {
    /// Cross-step checks: `needs` targets, cycles, and context references.
    pub(super) fn check_graph(
        &mut self,
        steps: &[StepDef],
        infos: &[StepInfo],
        params: &[ParamDef],
    ) {
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        let mut edges: Vec<Vec<(usize, Loc)>> = vec![Vec::new(); steps.len()];
        for ((s, info), out) in steps.iter().zip(infos).zip(edges.iter_mut()) {
            for (need, loc) in s.needs.iter().zip(&info.needs_locs) {
                match index.get(need.as_str()) {
                    Some(&j) => out.push((j, *loc)),
                    None => {
                        let h = match closest(need, ids.iter().copied()) {
                            Some(c) => format!("did you mean `{c}`?"),
                            None => format!("known step ids: {}", ids.join(", ")),
                        };
                        self.error(
                            *loc,
                            format!("`needs` refers to unknown step `{need}`"),
                            Some(h),
                        );
                    }
                }
            }
        }
        self.report_cycles(&edges, &ids);
        let closure = transitive_needs(&edges);
        for (i, (s, info)) in steps.iter().zip(infos).enumerate() {
            for r in &info.refs {
                self.check_ref(i, s, info, r, &index, &closure, params, &ids);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_ref(
        &mut self,
        i: usize,
        s: &StepDef,
        info: &StepInfo,
        r: &RefSite,
        index: &HashMap<&str, usize>,
        closure: &[BTreeSet<usize>],
        params: &[ParamDef],
        ids: &[&str],
    ) {
        let root = r.path.first().map(String::as_str);
        let second = r.path.get(1).map(String::as_str);
        match (root, second) {
            (Some("params"), Some(p)) if !params.iter().any(|d| d.name == p) => {
                let names: Vec<&str> = params.iter().map(|d| d.name.as_str()).collect();
                let h = match closest(p, names.iter().copied()) {
                    Some(c) => format!("did you mean `params.{c}`?"),
                    None => format!("declare `{p}` under `params:`"),
                };
                self.error(r.loc, format!("unknown param `{p}`"), Some(h));
            }
            (Some("steps"), Some(x)) => match index.get(x) {
                None => {
                    let h = match closest(x, ids.iter().copied()) {
                        Some(c) => format!("did you mean `steps.{c}`?"),
                        None => format!("known step ids: {}", ids.join(", ")),
                    };
                    self.error(r.loc, format!("reference to unknown step `{x}`"), Some(h));
                }
                Some(&j) if j == i => {
                    self.error(
                        r.loc,
                        format!("step `{}` refers to its own outputs", s.id),
                        help("a step can only read outputs of steps it needs"),
                    );
                }
                Some(&j) if !closure.get(i).is_some_and(|c| c.contains(&j)) => {
                    self.error(
                        r.loc,
                        format!(
                            "step `{}` reads `steps.{x}` but does not depend on `{x}`",
                            s.id
                        ),
                        help(format!("add {x} to needs")),
                    );
                }
                Some(_) => {}
            },
            (Some("item"), _) if !info.has_for_each => {
                self.error(
                    r.loc,
                    "`item` is only available in a step with `for_each`",
                    help("add `for_each:` to this step or remove `item`"),
                );
            }
            (Some("item"), _) if r.in_for_each => {
                self.error(
                    r.loc,
                    "`for_each` cannot use `item`",
                    help("`item` is the current element, defined by `for_each` itself"),
                );
            }
            _ => {}
        }
    }

    pub(super) fn report_cycles(&mut self, edges: &[Vec<(usize, Loc)>], ids: &[&str]) {
        // Iterative DFS (white/grey/black) so deep chains can't overflow.
        let n = edges.len();
        let mut color = vec![0u8; n];
        let mut reported: HashSet<BTreeSet<usize>> = HashSet::new();
        for start in 0..n {
            if color.get(start) != Some(&0) {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            if let Some(c) = color.get_mut(start) {
                *c = 1;
            }
            while let Some(&mut (u, ref mut next)) = stack.last_mut() {
                let Some(&(v, loc)) = edges.get(u).and_then(|e| e.get(*next)) else {
                    if let Some(c) = color.get_mut(u) {
                        *c = 2;
                    }
                    stack.pop();
                    continue;
                };
                *next += 1;
                match color.get(v).copied() {
                    Some(0) => {
                        if let Some(c) = color.get_mut(v) {
                            *c = 1;
                        }
                        stack.push((v, 0));
                    }
                    Some(1) => {
                        let pos = stack.iter().position(|&(w, _)| w == v).unwrap_or(0);
                        let members: Vec<usize> = stack
                            .get(pos..)
                            .unwrap_or_default()
                            .iter()
                            .map(|&(w, _)| w)
                            .collect();
                        let set: BTreeSet<usize> = members.iter().copied().collect();
                        if reported.insert(set) {
                            let mut path: Vec<&str> = members
                                .iter()
                                .filter_map(|&w| ids.get(w).copied())
                                .collect();
                            path.push(ids.get(v).copied().unwrap_or("?"));
                            self.error(
                                loc,
                                format!("`needs` cycle: {}", path.join(" -> ")),
                                help("remove one of these `needs` entries to break the cycle"),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// For each step, all steps it (transitively) needs.
fn transitive_needs(edges: &[Vec<(usize, Loc)>]) -> Vec<BTreeSet<usize>> {
    (0..edges.len())
        .map(|i| {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<usize> = edges
                .get(i)
                .map(|e| e.iter().map(|x| x.0).collect())
                .unwrap_or_default();
            while let Some(j) = todo.pop() {
                if seen.insert(j) {
                    todo.extend(edges.get(j).into_iter().flatten().map(|x| x.0));
                }
            }
            seen
        })
        .collect()
}
