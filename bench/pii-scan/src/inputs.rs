//! The benchmark inputs, generated deterministically (a fixed xorshift seed, no clock, no
//! environment). The native runner writes them to files and the V8 runner reads those files, so
//! both scan the same bytes.

/// A 16 KiB request body: the size the per-request times are for.
pub const REQUEST_BYTES: usize = 16 * 1024;

/// At most this much of the corpus (whole lines).
pub const CORPUS_BYTES: usize = 1024 * 1024;

/// One input: a file name, a description for the report, and the text.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: &'static str,
    pub description: &'static str,
    pub text: String,
}

/// The built-in PII values planted in the prose of `prose_pii_16k` (every one is found by the
/// built-in detectors; the native runner checks the count).
pub const PLANTED_BUILTIN: [&str; 10] = [
    "john.doe@example.com",
    "4111 1111 1111 1111",
    "+1 415 555 0132",
    "DE89 3704 0044 0532 0130 00",
    "AKIAIOSFODNN7EXAMPLE",
    "maria.rossi@example.org",
    "5555 5555 5555 4444",
    "(212) 555-0187",
    "GB82 WEST 1234 5698 7654 32",
    "ghp_Zx9Kq2Lm7Vb4Nc1Rt8Yw3Hs6Jd5Fg0PaQeWu",
];

/// The custom-rule values planted in the same text (found by every custom engine).
pub const PLANTED_CUSTOM: [&str; 4] = ["EMP-204518", "build-07.corp.example.com", "SEC-4821", "CONFIDENTIAL"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or_default()
    }
}

const OPENERS: [&str; 12] = [
    "Could you",
    "Please",
    "I would like you to",
    "Thanks, now",
    "Great. Can you",
    "Sure, I will",
    "Let me",
    "Here is how to",
    "First we should",
    "It would help to",
    "Next, try to",
    "The best way is to",
];
const VERBS: [&str; 16] = [
    "summarise",
    "rewrite",
    "explain",
    "compare",
    "review",
    "translate",
    "shorten",
    "outline",
    "check",
    "improve",
    "describe",
    "list",
    "draft",
    "refactor",
    "test",
    "plan",
];
const OBJECTS: [&str; 16] = [
    "the quarterly report",
    "this paragraph",
    "the meeting notes",
    "the release plan",
    "our onboarding guide",
    "the error message",
    "the product roadmap",
    "a friendly reply to the customer",
    "the function below",
    "the main arguments",
    "the open questions",
    "the project proposal",
    "the support ticket history",
    "a short summary for the team",
    "the migration steps",
    "the marketing email",
];
const TAILS: [&str; 16] = [
    "in plain English",
    "for a busy manager",
    "with a few bullet points",
    "and keep the tone warm",
    "without changing the meaning",
    "so that a new colleague understands it",
    "and point out anything unclear",
    "in fewer than 200 words",
    "before the end of the week",
    "with one example for each step",
    "and suggest what to do next",
    "as if you were a senior engineer",
    "in 3 short sections",
    "while keeping the original structure",
    "and mention the main risks",
    "for the weekly newsletter",
];
const FILLERS: [&str; 14] = [
    "The assistant thinks this is a reasonable approach, although a few details are still missing.",
    "Overall the draft reads well, but the second half repeats the same point twice.",
    "That makes sense; the main idea is to keep each step small and easy to review.",
    "In short, the team agreed to ship the change after one more round of testing.",
    "You may also want to add a short introduction that explains why this matters.",
    "The answer depends on how often the data changes and who needs to read it.",
    "Remember that simple words usually work better than long and formal ones.",
    "I have reordered the list so that the most important items come first.",
    "Let me know if you would like a longer version or a different style.",
    "A good rule of thumb is to write for the reader who has the least context.",
    "Here is a revised version with clearer headings and shorter sentences.",
    "It took about 15 minutes to go through the whole document carefully.",
    "The feedback from the last 2 meetings was mostly positive, with a few concerns.",
    "This should be enough to get started; we can refine it later together.",
];
const PLANT_SENTENCES: [&str; 4] = [
    "For anything urgent you can use {} and I will answer quickly.",
    "The value in the form was {} according to the customer.",
    "Please double check {} before you send the final version.",
    "They mentioned {} in the previous message, so keep it handy.",
];

/// One chat-like sentence (ASCII, no quotes or backslashes, no PII).
fn sentence(rng: &mut Rng) -> String {
    if rng.below(3) == 0 {
        rng.pick(&FILLERS).to_string()
    } else {
        let end = if rng.below(4) == 0 { "?" } else { "." };
        format!("{} {} {} {}{end}", rng.pick(&OPENERS), rng.pick(&VERBS), rng.pick(&OBJECTS), rng.pick(&TAILS))
    }
}

/// Chat-like prose of exactly `len` bytes: paragraphs of 2 to 6 sentences, separated by blank
/// lines, with `plants` (each in a sentence of its own) spread evenly. The prose sentences do not
/// depend on the plants, so the text with plants is the text without them plus those sentences.
fn prose(len: usize, plants: &[&str], single_line: bool) -> String {
    let mut rng = Rng(0x2026_1127_9e37_79b9);
    let mut plant_rng = Rng(0x5eed_0000_0000_0001);
    let spacing = len / (plants.len() + 1);
    let mut text = String::with_capacity(len + 256);
    let mut next_plant = 0usize;
    let mut in_paragraph = 0usize;
    let mut paragraph_len = 2 + rng.below(5);
    while text.len() < len {
        text.push_str(&sentence(&mut rng));
        in_paragraph += 1;
        if let Some(value) = plants.get(next_plant) {
            if text.len() >= spacing * (next_plant + 1) {
                let template = plant_rng.pick(&PLANT_SENTENCES);
                text.push(' ');
                text.push_str(&template.replace("{}", value));
                next_plant += 1;
            }
        }
        if in_paragraph >= paragraph_len && !single_line {
            text.push_str("\n\n");
            in_paragraph = 0;
            paragraph_len = 2 + rng.below(5);
        } else {
            text.push(' ');
        }
    }
    text.truncate(len);
    text
}

/// (a) 16 KiB of chat-like English prose with no PII.
pub fn prose_16k() -> String {
    prose(REQUEST_BYTES, &[], false)
}

/// (b) The same prose with the ten built-in values and four custom-rule values planted.
pub fn prose_pii_16k() -> String {
    let plants: Vec<&str> = interleave(&PLANTED_BUILTIN, &PLANTED_CUSTOM);
    prose(REQUEST_BYTES, &plants, false)
}

fn interleave<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        out.extend(a.get(i));
        out.extend(b.get(i));
    }
    out
}

/// (c) The `text` of every corpus line, joined with newlines, up to [`CORPUS_BYTES`] (whole
/// lines only).
pub fn corpus_1m(corpus_jsonl: &str) -> Result<String, String> {
    let mut text = String::with_capacity(CORPUS_BYTES);
    for (i, line) in corpus_jsonl.lines().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("corpus line {}: {e}", i + 1))?;
        let line_text = value.get("text").and_then(|t| t.as_str()).ok_or(format!("corpus line {}: no text", i + 1))?;
        if text.len() + line_text.len() + 1 > CORPUS_BYTES {
            break;
        }
        text.push_str(line_text);
        text.push('\n');
    }
    Ok(text)
}

/// (d) A 16 KiB JSON chat request body, `{"model": ..., "messages": [...]}`, no PII: a system
/// message and alternating user and assistant turns of the same prose.
pub fn chat_json_16k() -> String {
    let mut rng = Rng(0x0c4a_7000_0000_0005);
    let head = r#"{"model":"gpt-4o-2024-08-06","temperature":0.2,"max_tokens":1024,"stream":true,"messages":["#;
    let mut messages = vec![serde_json::json!({
        "role": "system",
        "content": "You are a helpful assistant for the operations team.\nAnswer briefly and politely.",
    })];
    let body = |messages: &[serde_json::Value]| {
        let list: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
        format!("{head}{}]}}", list.join(","))
    };
    let last = r#",{"role":"user","content":""}"#.len();
    loop {
        let role = if messages.len() % 2 == 1 { "user" } else { "assistant" };
        let sentences = 2 + rng.below(6);
        let content: Vec<String> = (0..sentences).map(|_| sentence(&mut rng)).collect();
        let mut candidate = messages.clone();
        candidate.push(
            serde_json::json!({"role": role, "content": content.join(if rng.below(2) == 0 { " " } else { "\n\n" })}),
        );
        if body(&candidate).len() + last + 64 > REQUEST_BYTES {
            break;
        }
        messages = candidate;
    }
    // Fill up to exactly 16 KiB with a last user turn (single-line prose: no escapes, so its
    // serialized length is its length).
    let room = REQUEST_BYTES - body(&messages).len() - last;
    let filler = prose(room, &[], true);
    messages.push(serde_json::json!({"role": "user", "content": filler.trim_end()}));
    let mut out = body(&messages);
    // A trailing space trimmed from the filler comes back as a space before the closing brace.
    while out.len() < REQUEST_BYTES {
        out.insert(out.len() - 1, ' ');
    }
    out
}

/// Every input, in report order. `corpus_jsonl` is `tests/fixtures/pii/corpus.jsonl`.
pub fn all(corpus_jsonl: &str) -> Result<Vec<Input>, String> {
    Ok(vec![
        Input { name: "prose-16k", description: "16 KiB chat-like English prose, no PII", text: prose_16k() },
        Input {
            name: "prose-pii-16k",
            description: "the same prose with 10 built-in PII values and 4 custom-rule values planted",
            text: prose_pii_16k(),
        },
        Input {
            name: "corpus-1m",
            description: "tests/fixtures/pii/corpus.jsonl texts joined by newlines, first 1 MiB",
            text: corpus_1m(corpus_jsonl)?,
        },
        Input { name: "chat-json-16k", description: "16 KiB JSON chat request body, no PII", text: chat_json_16k() },
    ])
}
