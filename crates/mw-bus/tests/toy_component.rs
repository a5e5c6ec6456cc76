//! The seam, proven: a component defined only here — not shipped, touching no other crate —
//! registers a config section with its own span-checked error, builds a source and a sink from
//! it, and runs on the bus next to nothing else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mw_bus::{
    BoxFuture, BuildError, BusBuilder, BusConfig, Component, Parts, Sink, SinkInput, SinkOptions,
    Source, SourceContext, SourceRegistry, SourceState, Wants, config_registry,
};
use mw_config::{Config, Cx, Section, SectionValue, Table};
use mw_model::{DataType, Event, EventKind, Sample, TagDef, TagPath, Value};

/// `[counter]`: `tag` (a tag path it defines), `count` (1..=1000 samples), `every_ms`.
#[derive(Clone, Debug, Default, PartialEq)]
struct CounterConfig {
    tag: Option<TagPath>,
    count: u32,
    every_ms: u64,
}

struct CounterSection;

impl Section for CounterSection {
    fn key(&self) -> &'static str {
        "counter"
    }

    fn check(&self, root: Table<'_, '_>, cx: &mut Cx<'_>) -> Box<dyn SectionValue> {
        let mut out = CounterConfig {
            tag: None,
            count: 10,
            every_ms: 1,
        };
        let Some(t) = cx.table(root, "counter", false, "[counter]") else {
            return Box::new(out);
        };
        let t = t.v;
        cx.unknown_keys(t, &["tag", "count", "every_ms"]);
        if let Some(f) = cx.string(t, "tag", true)
            && let Some((path, first)) = cx.define_tag(&f, "[counter]", "counter tag")
        {
            if first {
                cx.set_tag_type(&path, DataType::U64);
            }
            cx.add_tag(TagDef::new(path.clone(), DataType::U64));
            out.tag = Some(path);
        }
        if let Some(f) = cx.integer(t, "count", false, 1..=1000) {
            out.count = f.v as u32;
        }
        if let Some(f) = cx.integer(t, "every_ms", false, 1..=1000) {
            if f.v % 2 == 1 && f.v > 1 {
                cx.err(f.span.start, "\"every_ms\" in [counter] must be 1 or even");
            }
            out.every_ms = f.v as u64;
        }
        Box::new(out)
    }
}

struct CounterSource(CounterConfig);

impl Source for CounterSource {
    fn component(&self) -> &'static str {
        "counter"
    }

    fn instance(&self) -> String {
        "c1".into()
    }

    fn run(self: Box<Self>, mut cx: SourceContext) -> BoxFuture<()> {
        Box::pin(async move {
            let Some(tag) = self.0.tag.clone() else {
                return;
            };
            cx.status.set_state(SourceState::Up);
            let up = Event::new(
                mw_model::now_ns(),
                "counter/c1",
                EventKind::ConnectionChange {
                    up: true,
                    reason: None,
                },
            );
            if cx.publisher.publish_events(vec![up]).await.is_err() {
                return;
            }
            for i in 0..u64::from(self.0.count) {
                let s = Sample::good(tag.clone(), Value::U64(i), mw_model::now_ns());
                tokio::select! {
                    () = cx.shutdown.wait() => return,
                    r = cx.publisher.publish(vec![s]) => if r.is_err() { return },
                }
                cx.status.cycle_done(0.0);
                tokio::time::sleep(Duration::from_millis(self.0.every_ms)).await;
            }
        })
    }
}

/// A sink keeping what it got, shared with the test through a handle the component provides.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<(Vec<u64>, Vec<String>)>>);

struct SeenSink(Seen);

impl Sink for SeenSink {
    fn options(&self) -> SinkOptions {
        SinkOptions::new("seen", 8).wants(Wants::Both)
    }

    fn run(self: Box<Self>, mut input: SinkInput) -> BoxFuture<()> {
        Box::pin(async move {
            while let Some(d) = input.recv().await {
                let mut g = self.0.0.lock().unwrap();
                for s in &d.batch.samples {
                    if let Value::U64(v) = s.value {
                        g.0.push(v);
                    }
                }
                g.1.extend(d.batch.events.iter().map(|e| e.kind.name().to_owned()));
                drop(g);
                d.commit();
            }
        })
    }
}

struct Toy;

impl Component for Toy {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(CounterSection)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        let c = cfg.section::<CounterConfig>().ok_or(BuildError {
            component: "toy",
            message: "config parsed without the [counter] section".into(),
        })?;
        if c.tag.is_some() {
            parts.add_source(Box::new(CounterSource(c.clone())));
            let seen = Seen::default();
            parts.add_sink(Box::new(SeenSink(seen.clone())));
            parts.provide(seen);
        }
        Ok(())
    }
}

#[test]
fn the_toy_section_reports_its_own_errors_with_spans() {
    let reg = config_registry(&[&Toy]);
    let d = reg
        .parse(
            "[counter]\ntag = \"toy/c/n\"\nevery_ms = 3\ncolour = 1\n",
            "toy.toml",
        )
        .unwrap_err();
    assert_eq!(
        d.to_string(),
        "toy.toml:3:12: \"every_ms\" in [counter] must be 1 or even\n\
         toy.toml:4:1: unknown key \"colour\" in [counter] (allowed: tag, count, every_ms)"
    );
    // the shared checks still apply to it: its tag path is validated by the model
    let d = reg
        .parse("[counter]\ntag = \"toy//n\"\n", "toy.toml")
        .unwrap_err();
    assert!(
        d.to_string().starts_with("toy.toml:2:7: invalid tag path"),
        "{d}"
    );
}

#[tokio::test]
async fn the_toy_component_runs_on_the_bus() {
    let cfg = config_registry(&[&Toy])
        .parse("[counter]\ntag = \"toy/c/n\"\ncount = 25\n", "toy.toml")
        .unwrap();
    assert_eq!(
        cfg.asset_tree().tag_count(),
        1,
        "its tag is in the asset tree"
    );
    let mut parts = Parts::new();
    Toy.build(&cfg, &mut parts).unwrap();
    let seen = parts.take::<Seen>().expect("the toy provides its handle");
    let mut bus = BusBuilder::new(BusConfig::default());
    bus.parts(parts);
    let registry = SourceRegistry::new();
    let running = bus.start(&registry);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.0.lock().unwrap().0.len() < 25 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the counter never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(running.stop(Duration::from_secs(1)).await);
    let (values, events) = seen.0.lock().unwrap().clone();
    assert_eq!(values, (0..25).collect::<Vec<u64>>());
    assert_eq!(events, ["connection_change"]);
    let status = &registry.snapshot()[0];
    assert_eq!(
        (status.component.as_str(), status.instance.as_str()),
        ("counter", "c1")
    );
    assert_eq!(status.state, SourceState::Up);
    assert_eq!(status.cycles, 25);
}
