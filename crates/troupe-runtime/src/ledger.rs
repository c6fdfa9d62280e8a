//! Tokens, calls and cost per task, per agent and per run, and the run's token/cost budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use troupe_crew::LlmSettings;
use troupe_llm::Usage;

/// Counters for one task, one agent, or the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those served from a cache (a provider's prompt cache, the embedded
    /// model's reused KV prefix).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_input_tokens: u64,
    pub model_calls: u64,
    pub tool_calls: u64,
    /// USD, when the crew gives prices for every model used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Stats {
    fn add_call(&mut self, usage: Usage, cost: Option<f64>) {
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.cached_input_tokens += usage.cached_input_tokens;
        self.model_calls += 1;
        if let Some(c) = cost {
            *self.cost_usd.get_or_insert(0.0) += c;
        }
    }
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Whom a call is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// Made now, or answered from another run's recording as if made now (`--replay-calls`,
    /// so that budgets behave as they did).
    Paid,
    /// Answered from this run's own record: paid before the run was resumed.
    Prepaid,
}

/// Why the run's budget is spent.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    pub limit: &'static str,
    pub value: String,
    pub key: &'static str,
}

/// Shared by every agent of a run. A std mutex: every critical section is a few additions and
/// never spans an await.
#[derive(Debug)]
pub struct Ledger {
    inner: Mutex<Inner>,
    max_tokens: u64,
    max_cost_usd: Option<f64>,
}

#[derive(Debug, Default)]
struct Inner {
    per_task: HashMap<usize, Stats>,
    per_agent: BTreeMap<String, Stats>,
    total: Stats,
}

impl Ledger {
    pub fn new(max_tokens: u64, max_cost_usd: Option<f64>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_tokens,
            max_cost_usd,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Records one model call made for `task` by `agent`. A call answered from this run's own
    /// record ([`Charge::Prepaid`]) counts for its task only: the agent and the run paid for it
    /// when it was first made, and [`Ledger::prepaid_call`] already counted that.
    pub fn record_call(
        &self,
        task: usize,
        agent: &str,
        usage: Usage,
        llm: &LlmSettings,
        charge: Charge,
    ) {
        let cost = price(usage, llm);
        let mut g = self.lock();
        g.per_task.entry(task).or_default().add_call(usage, cost);
        if charge == Charge::Paid {
            g.per_agent
                .entry(agent.to_string())
                .or_default()
                .add_call(usage, cost);
            g.total.add_call(usage, cost);
        }
    }

    pub fn record_tool(&self, task: usize, agent: &str, charge: Charge) {
        let mut g = self.lock();
        g.per_task.entry(task).or_default().tool_calls += 1;
        if charge == Charge::Paid {
            g.per_agent.entry(agent.to_string()).or_default().tool_calls += 1;
            g.total.tool_calls += 1;
        }
    }

    /// A model call made before this process took the run over (a resumed run): the run's
    /// budget continues from what was already spent.
    pub fn prepaid_call(&self, agent: &str, usage: Usage, llm: &LlmSettings) {
        let cost = price(usage, llm);
        let mut g = self.lock();
        g.per_agent
            .entry(agent.to_string())
            .or_default()
            .add_call(usage, cost);
        g.total.add_call(usage, cost);
    }

    /// A tool call made before this process took the run over.
    pub fn prepaid_tool(&self, agent: &str) {
        let mut g = self.lock();
        g.per_agent.entry(agent.to_string()).or_default().tool_calls += 1;
        g.total.tool_calls += 1;
    }

    /// A task kept from an earlier run or an earlier part of this one: its usage as recorded.
    pub fn keep_task(&self, task: usize, stats: Stats) {
        self.lock().per_task.insert(task, stats);
    }

    /// Tokens left in the run's budget.
    pub fn remaining_tokens(&self) -> u64 {
        self.max_tokens.saturating_sub(self.lock().total.tokens())
    }

    /// `Some` once a run budget is used up: no further model call may start.
    pub fn exhausted(&self) -> Option<Exhausted> {
        let g = self.lock();
        if g.total.tokens() >= self.max_tokens {
            return Some(Exhausted {
                limit: "max_tokens",
                value: self.max_tokens.to_string(),
                key: "limits.max_tokens",
            });
        }
        match (self.max_cost_usd, g.total.cost_usd) {
            (Some(max), Some(spent)) if spent >= max => Some(Exhausted {
                limit: "max_cost_usd",
                value: format!("{max}"),
                key: "limits.max_cost_usd",
            }),
            _ => None,
        }
    }

    pub fn task(&self, task: usize) -> Stats {
        self.lock().per_task.get(&task).cloned().unwrap_or_default()
    }
    pub fn agents(&self) -> BTreeMap<String, Stats> {
        self.lock().per_agent.clone()
    }
    pub fn total(&self) -> Stats {
        self.lock().total.clone()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A call's cost: input at `input_cost_per_mtok`, except the cached part at
/// `cached_input_cost_per_mtok` when the crew gives it; output at `output_cost_per_mtok`.
fn price(usage: Usage, llm: &LlmSettings) -> Option<f64> {
    match (llm.input_cost_per_mtok, llm.output_cost_per_mtok) {
        (None, None) => None,
        (i, o) => {
            let input = i.unwrap_or(0.0);
            let cached = usage.cached_input_tokens.min(usage.input_tokens);
            let fresh = usage.input_tokens - cached;
            Some(
                (fresh as f64) * input / 1e6
                    + (cached as f64) * llm.cached_input_cost_per_mtok.unwrap_or(input) / 1e6
                    + (usage.output_tokens as f64) * o.unwrap_or(0.0) / 1e6,
            )
        }
    }
}
