// Client feedback for the llmobs gateway, in TypeScript (docs/filters/correlation.md, "Client
// feedback"). tests/test_feedback.py compiles this file with tsc and runs it against the real
// Envoy. Needs a runtime with fetch (Node >= 18, browsers).
//
// The rated request's id is the `x-request-id` the gateway echoed on the model's answer; with
// the OpenAI SDK: `const { data, response } = await client.chat.completions.create({...})
// .withResponse(); const requestId = response.headers.get("x-request-id");`

export const FEEDBACK_PATH = "/llmobs/v1/feedback";

export interface Feedback {
  request_id: string;
  rating?: "up" | "down"; // required when kind is "feedback"
  kind?: "feedback" | "client_error";
  conversation_id?: string;
  task_completed?: boolean;
  ticket_url?: string;
  locale?: string; // language[-Script][-REGION]: "en", "de-CH", "zh-Hant-TW"
}

// Best effort: resolves to false instead of throwing, so a lost rating never fails the user's
// action. 204 means recorded; 400/405/413/415 carry {"error": {"type": "invalid_feedback",
// "reason": ...}}.
export async function sendFeedback(
  gateway: string,
  feedback: Feedback,
  promptVersion?: string,
  timeoutMs = 2000,
): Promise<boolean> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (promptVersion) headers["x-llmobs-prompt-version"] = promptVersion;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(gateway + FEEDBACK_PATH, {
      method: "POST",
      headers,
      body: JSON.stringify({ kind: "feedback", ...feedback }),
      signal: abort.signal,
    });
    return response.status === 204;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
