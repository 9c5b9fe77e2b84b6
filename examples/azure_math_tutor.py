"""A math tutor on the Assistants API, written for Azure OpenAI.

It needs three variables and nothing else: AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and
AZURE_OPENAI_API_VERSION. Pointed at Azure OpenAI it runs there; pointed at assistd
(AZURE_OPENAI_ENDPOINT=http://127.0.0.1:8000 and an assistd key) it runs unchanged.

The assistant writes and runs Python (code_interpreter) to solve an equation and plot it; the
program waits for the run, prints the conversation and saves the plot it drew.
"""

import os
import sys

from openai import AzureOpenAI

client = AzureOpenAI(
    api_key=os.environ["AZURE_OPENAI_API_KEY"],
    azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
    api_version=os.environ["AZURE_OPENAI_API_VERSION"],
)

tutor = client.beta.assistants.create(
    name="Math Tutor",
    instructions=(
        "You are a personal math tutor. When you are asked a math question, write and run "
        "Python code to answer it, and draw a plot when it helps."
    ),
    tools=[{"type": "code_interpreter"}],
    model="gpt-4o",  # the name of your deployment
)
thread = client.beta.threads.create()
client.beta.threads.messages.create(
    thread_id=thread.id,
    role="user",
    content="Solve 3x + 11 = 14, then plot y = 3x + 11 for x between -5 and 5.",
)

run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=tutor.id)
print(f"run {run.id}: {run.status}")
if run.status != "completed":
    print(f"the run did not complete: {run.last_error}", file=sys.stderr)
    sys.exit(1)

for message in client.beta.threads.messages.list(thread_id=thread.id, order="asc"):
    for part in message.content:
        if part.type == "text":
            print(f"{message.role}: {part.text.value}")
        elif part.type == "image_file":
            image = client.files.content(part.image_file.file_id)
            path = f"{part.image_file.file_id}.png"
            with open(path, "wb") as out:
                out.write(image.read())
            print(f"{message.role}: [plot saved to {path}]")
