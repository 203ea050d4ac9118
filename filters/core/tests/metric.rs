//! `metric::Handles`: the cache of metric handles keyed by (metric, label values).

use llmobs_core::metric::{self, Handles};
use llmobs_testkit::FakeHost;

const LABELS: [(&str, &str); 2] = [("gen_ai.provider.name", "openai"), ("reason", "no_usage")];

#[test]
fn a_repeat_update_reuses_the_handle_without_asking_the_host() {
    let mut host = FakeHost::default();
    let handles = Handles::default();
    handles.add(&mut host, "llmobs.x", &LABELS, 2);
    // A host that refuses every definition from now on: the next updates count only if they
    // found the handle in the cache.
    host.refuse_metrics = true;
    handles.add(&mut host, "llmobs.x", &LABELS, 3);
    handles.add(&mut host, "llmobs.x", &[("gen_ai.provider.name", "openai"), ("reason", "no_usage")], 1);
    assert_eq!(host.counter("llmobs.x.gen_ai.provider.name=openai;.reason=no_usage;"), Some(6));
    assert_eq!(handles.len(), 1);
}

#[test]
fn the_metric_is_defined_under_the_encoded_name() {
    let mut host = FakeHost::default();
    let handles = Handles::default();
    let labels = [("model", "gpt 4o;x=y"), ("synthetic", "false")];
    handles.add(&mut host, "llmobs.y", &labels, 1);
    handles.observe(&mut host, "llmobs.h", &labels, 7);
    assert_eq!(host.counter(&metric::name("llmobs.y", &labels)), Some(1));
    assert_eq!(host.counter("llmobs.y.model=gpt_4o_x_y;.synthetic=false;"), Some(1));
    assert_eq!(host.histogram("llmobs.h.model=gpt_4o_x_y;.synthetic=false;"), vec![7]);
}

#[test]
fn every_difference_in_metric_key_or_value_is_a_handle_of_its_own() {
    let mut host = FakeHost::default();
    let handles = Handles::default();
    handles.add(&mut host, "llmobs.x", &LABELS, 1);
    handles.add(&mut host, "llmobs.z", &LABELS, 1);
    handles.add(&mut host, "llmobs.x", &[("gen_ai.provider.name", "openai"), ("reason", "other")], 1);
    handles.add(&mut host, "llmobs.x", &[("gen_ai.provider.name", "openai"), ("why", "no_usage")], 1);
    handles.add(&mut host, "llmobs.x", &LABELS[..1], 1);
    // Where one part ends matters: ("ab", "c") is not ("a", "bc").
    handles.add(&mut host, "llmobs.x", &[("ab", "c")], 1);
    handles.add(&mut host, "llmobs.x", &[("a", "bc")], 1);
    handles.observe(&mut host, "llmobs.x", &LABELS, 1);
    assert_eq!(handles.len(), 8);
    assert_eq!(host.counter("llmobs.x.ab=c;"), Some(1));
    assert_eq!(host.counter("llmobs.x.a=bc;"), Some(1));
    assert_eq!(host.counter("llmobs.x.gen_ai.provider.name=openai;.reason=other;"), Some(1));
}

#[test]
fn a_refused_definition_is_not_cached_and_is_asked_again() {
    let mut host = FakeHost::refusing_metrics();
    let handles = Handles::default();
    handles.add(&mut host, "llmobs.x", &LABELS, 1);
    assert!(handles.is_empty());
    host.refuse_metrics = false;
    handles.add(&mut host, "llmobs.x", &LABELS, 1);
    assert_eq!(host.counter("llmobs.x.gen_ai.provider.name=openai;.reason=no_usage;"), Some(1));
}

#[test]
fn a_name_built_by_the_caller_counts_under_that_name() {
    let mut host = FakeHost::default();
    let handles = Handles::default();
    handles.count(&mut host, metric::name("llmobs.e", &[("result", "sent")]), 2);
    handles.count(&mut host, metric::name("llmobs.e", &[("result", "sent")]), 1);
    assert_eq!(host.counter("llmobs.e.result=sent;"), Some(3));
    assert_eq!(handles.len(), 1);
}
