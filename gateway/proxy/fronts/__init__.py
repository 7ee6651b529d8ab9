"""Front protocols: APIs other than OpenAI's chat completions that clients call Tollgate with (Anthropic's Messages,
OpenAI's Responses), each translated to a chat call on the way in and back to its own shape on the way out.

A front is one object per request (it keeps what the answer repeats of the request: instructions, tools). The proxy
service runs a front's call exactly as a chat call: the same admission, routing, pricing, ledger row, cost headers,
failure logging and disconnect charging; only the body going in, the answer, the stream's events and the error shape
differ. The methods the service and the relay call:

- `call_type`: what the spend log records (`anthropic_messages`, `responses`); `id_prefix`: the call id's prefix;
- `to_chat(body) -> dict`: the front's request body as a chat payload (raises BadRequest);
- `for_deployment(payload, deployment) -> dict`: that payload as one attempt's deployment takes it (raises
  ProviderError for what its provider cannot take);
- `answer(chat_response, call) -> dict`: a chat completion as the front's answer;
- `stream(call)`: an encoder of one stream, with `chunk(chat_chunk) -> bytes`, `end(usage, cost) -> bytes` and
  `error(exc) -> bytes`;
- `error_response(exc) -> HttpResponse`: a refusal in the front's error shape.
"""
