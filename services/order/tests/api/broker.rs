//! Taking the test project's RabbitMQ down and back up, and a TCP hop in front of it so
//! services keep one URL even if the engine gives the restarted container a new port.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use msctl_stack::docker::DockerRuntime;
use msctl_stack::runtime::Runtime;
use msctl_stack::testing::{TestInfra, TEST_PROJECT};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::RwLock;

/// Tests that need RabbitMQ up hold a read guard; the outage test holds the write guard.
pub static BROKER: RwLock<()> = RwLock::const_new(());

/// A TCP forwarder 127.0.0.1:port → 127.0.0.1:target (target can change).
pub struct Hop {
    pub port: u16,
    target: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Hop {
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hop");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(AtomicU16::new(target));
        let t = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = t.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", to)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, target, task }
    }

    pub fn retarget(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

impl Drop for Hop {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn rabbit_container(rt: &DockerRuntime) -> String {
    rt.list_containers()
        .await
        .expect("list containers")
        .into_iter()
        .find(|c| c.component() == Some("rabbitmq"))
        .map(|c| c.id)
        .expect("the msctl-test rabbitmq container")
}

async fn runtime() -> DockerRuntime {
    let docker = msctl_stack::engine::connect().await.expect("docker engine");
    DockerRuntime::new(docker, TEST_PROJECT)
}

/// Stop the test project's RabbitMQ.
pub async fn stop_rabbitmq() {
    let rt = runtime().await;
    let id = rabbit_container(&rt).await;
    rt.stop_container(&id, Duration::from_secs(10))
        .await
        .expect("stop rabbitmq");
}

/// Start it again, wait until healthy, and return its AMQP port on 127.0.0.1.
pub async fn start_rabbitmq() -> u16 {
    let rt = runtime().await;
    let id = rabbit_container(&rt).await;
    let _ = rt.start_container(&id).await;
    let infra = TestInfra::boot(env!("CARGO_MANIFEST_DIR"), &["rabbitmq"])
        .await
        .expect("rabbitmq back up");
    let port = infra.port("rabbitmq", 5672).expect("amqp port");
    crate::helpers::AMQP_PORT.store(port, std::sync::atomic::Ordering::SeqCst);
    port
}
