FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY training ./training
COPY migrations ./migrations
COPY models ./models
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["rlpa", "serve"]
