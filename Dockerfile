FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY training ./training
COPY migrations ./migrations
COPY models ./models
RUN pip install --no-cache-dir .
# The shipped RLPA adapter for the embedded backend (the installed package does not hold models/).
ENV RLPA_ADAPTER=/app/models/smollm2-135m-rlpa/adapter.gguf
EXPOSE 8000
CMD ["rlpa", "serve"]
