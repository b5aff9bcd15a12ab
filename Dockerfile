# Builds monokube with the same make target as a developer machine and ships
# it in a small runtime image, for people who run nodes in containers.
# (No Docker engine runs on the project's build machines: this file is built
# elsewhere, e.g. `docker build -t monokube .`, and run privileged.)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN apt-get update && make && cp bin/monokube /monokube

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /monokube /usr/local/bin/monokube
RUN ln -s monokube /usr/local/bin/kubectl
VOLUME /var/lib/monokube
ENTRYPOINT ["/usr/local/bin/monokube"]
CMD ["server"]
